# Stability statistics of the grid (htsep.stats), and one rule per figure of the study: the figure registry
# htsep.figures.FIGURES names each figure, its tables, its config parts and its caption.

from htsep.figures import FIGURES, MECHANISM_TABLES, TABLES, figure_params


rule stats:
    """Per-(dataset, variant) stability and accuracy summary, and variant-vs-baseline tests (Holm-corrected)."""
    input:
        runs=f"{TABLES}/runs.parquet",
        epochs=f"{TABLES}/epochs.parquet",
    output:
        stats=report(f"{TABLES}/stats.csv", category="Tables", caption="../report/stats.rst"),
        summary=report(f"{TABLES}/summary.csv", category="Tables", caption="../report/summary.rst"),
    params:
        code=code("stats.py"),
        analysis=config["analysis"],
    log:
        "results/logs/stats.log",
    benchmark:
        "results/benchmarks/stats.tsv"
    resources:
        mem_mb=2000,
        runtime=20,
    conda:
        "../../environment.yml"
    script:
        "../scripts/stats.py"


for figure in FIGURES:

    rule:
        name:
            figure.rule
        input:
            **figure.tables,
        output:
            pdf=figure.path("pdf"),
            png=report(figure.path("png"), category="Mechanism" if figure.mechanism else "Figures",
                       caption="../report/figure.rst"),
        params:
            code=code("figure.py"),
            figure=figure.name,
            caption=figure.caption,  # the report's caption (../report/figure.rst shows it)
            **figure_params(figure, config),
        log:
            f"results/logs/{figure.stem}.log",
        benchmark:
            f"results/benchmarks/{figure.stem}.tsv"
        localrule: True
        resources:
            mem_mb=figure.mem_mb,
            runtime=10,
        conda:
            "../../environment.yml"
        script:
            "../scripts/figure.py"
