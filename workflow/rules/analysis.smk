# Stability statistics of the grid (htsep.experiments.grid.stats), and one rule per figure of the study: the figure
# registry htsep.report.figures.FIGURES names each figure, its tables, its config parts and its caption.

from htsep.config import section_slice
from htsep.report.figures import FIGURES, figure_files, figure_params, grid_protocol


rule stats:
    """Per-(dataset, variant) stability and accuracy summary, and variant-vs-baseline tests (Holm-corrected)."""
    input:
        runs=f"{TABLES}/runs.parquet",
        epochs=f"{TABLES}/epochs.parquet",
    output:
        stats=report(f"{TABLES}/stats.csv", category="Tables", caption="../report/stats.rst"),
        summary=report(f"{TABLES}/summary.csv", category="Tables", caption="../report/summary.rst"),
        gaps=report(f"{TABLES}/gaps.csv", category="Tables", caption="../report/gaps.rst"),
    log:
        "results/logs/stats.log",
    benchmark:
        "results/benchmarks/stats.tsv"
    conda:
        "../../environment.yml"
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        code=code("stats.py"),
        analysis=section_slice(config, "analysis"),
    script:
        "../scripts/stats.py"


for figure, protocol in [(f, p) for f in FIGURES for p, _ in f.outputs(config["run_protocols"])]:

    rule:
        name:
            figure.rule(protocol)
        input:
            **figure.tables,
        output:
            pdf=figure.path("pdf", protocol),
            png=report(
                figure.path("png", protocol),
                category="Mechanism" if figure.mechanism else "Figures",
                subcategory=protocol or "",
                caption="../report/figure.rst",
            ),
        log:
            f"results/logs/{figure.stem(protocol)}.log",
        benchmark:
            f"results/benchmarks/{figure.stem(protocol)}.tsv"
        localrule: True
        conda:
            "../../environment.yml"
        resources:
            mem_mb=figure.mem_mb,
            runtime=10,
        params:
            **figure_params(figure, config),
            code=code("figure.py"),
            figure=figure.name,
            protocol=grid_protocol(figure, protocol, config),
            caption=figure.caption,  # the report's caption (../report/figure.rst shows it)
        script:
            "../scripts/figure.py"
