# Stability statistics of the grid (htsep.experiments.grid.stats), its paired effects
# (htsep.experiments.grid.paired_effects), and one rule per figure of the study: the figure
# registry htsep.report.figures.FIGURES names each figure, its tables, its config parts and its caption.

from htsep.config import BACKPROP, section_slice
from htsep.report.figures import FIGURES, figure_files, figure_params


rule stats:
    """One protocol's per-(dataset, variant) stability and accuracy summary, variant-vs-baseline tests
    (Holm-corrected within the protocol) and its gaps to the backprop reference."""
    input:
        unpack(lambda w: reference_tables(w.protocol)),
        runs=f"{TABLES}/{{protocol}}/runs.parquet",
        epochs=f"{TABLES}/{{protocol}}/epochs.parquet",
    output:
        stats=report(f"{TABLES}/{{protocol}}/stats.csv", category="Tables", caption="../report/stats.rst"),
        summary=report(f"{TABLES}/{{protocol}}/summary.csv", category="Tables", caption="../report/summary.rst"),
        gaps=report(f"{TABLES}/{{protocol}}/gaps.csv", category="Tables", caption="../report/gaps.rst"),
    log:
        "results/logs/stats/{protocol}.log",
    benchmark:
        "results/benchmarks/stats/{protocol}.tsv"
    conda:
        "../../environment.yml"
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        code=code("stats.py"),
        analysis=section_slice(config, "analysis"),
        protocol=lambda w: w.protocol,
    script:
        "../scripts/stats.py"


rule paired_effects:
    """One protocol's paired effects (exploratory): each variant against each uniform baseline, paired by seed, with
    CIs, Holm-adjusted p-values (the protocol is one family) and the resolution of each test, by simulation."""
    input:
        runs=f"{TABLES}/{{protocol}}/runs.parquet",
        epochs=f"{TABLES}/{{protocol}}/epochs.parquet",
    output:
        report(f"{TABLES}/{{protocol}}/paired.csv", category="Tables", caption="../report/paired.rst"),
    log:
        "results/logs/paired/{protocol}.log",
    benchmark:
        "results/benchmarks/paired/{protocol}.tsv"
    conda:
        "../../environment.yml"
    resources:
        mem_mb=2000,
        runtime=120,
    params:
        code=code("paired_effects.py"),
        analysis=section_slice(config, "analysis"),
    script:
        "../scripts/paired_effects.py"


for figure, protocol in [(f, p) for f in FIGURES for p, _ in f.outputs(config["run_protocols"])]:

    rule:
        name:
            figure.rule(protocol)
        input:
            **figure.inputs(protocol, config),
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
            caption=figure.caption,  # the report's caption (../report/figure.rst shows it)
        script:
            "../scripts/figure.py"
