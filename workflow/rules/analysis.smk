# Stability statistics and figures of the grid, from the aggregated tables (see htsep.stats, htsep.plots).

TABLES = "results/tables"
FIGURE_TABLES = {
    "accuracy_curves": {"epochs": f"{TABLES}/epochs.parquet"},
    "final_accuracy": {"runs": f"{TABLES}/runs.parquet"},
    "seed_spread": {"epochs": f"{TABLES}/epochs.parquet"},
    "dt_distributions": {"dt": f"{TABLES}/dt_values.parquet"},
    "instability_counts": {"runs": f"{TABLES}/runs.parquet", "epochs": f"{TABLES}/epochs.parquet"},
    "free_residual": {"epochs": f"{TABLES}/epochs.parquet"},
}
FIGURE_ORDER = {"datasets": config["datasets"], "variants": config["variants"]}
FIGURE_OUTPUTS = {
    name: {
        "pdf": f"figures/{name}.pdf",
        "png": report(f"figures/{name}.png", category="Figures", caption=f"../report/{name}.rst"),
    }
    for name in FIGURE_TABLES
}


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


rule figure_accuracy_curves:
    """Test accuracy vs epoch: mean over seeds with its bootstrap CI band and thin per-seed lines."""
    input:
        **FIGURE_TABLES["accuracy_curves"],
    output:
        **FIGURE_OUTPUTS["accuracy_curves"],
    params:
        code=code("figure_accuracy_curves.py"),
        analysis=config["analysis"],
        **FIGURE_ORDER,
    log:
        "results/logs/figures/accuracy_curves.log",
    benchmark:
        "results/benchmarks/figures/accuracy_curves.tsv"
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../environment.yml"
    script:
        "../scripts/figure_accuracy_curves.py"


rule figure_final_accuracy:
    """Final test accuracy per seed (strip) and per variant (box), one panel per dataset."""
    input:
        **FIGURE_TABLES["final_accuracy"],
    output:
        **FIGURE_OUTPUTS["final_accuracy"],
    params:
        code=code("figure_final_accuracy.py"),
        **FIGURE_ORDER,
    log:
        "results/logs/figures/final_accuracy.log",
    benchmark:
        "results/benchmarks/figures/final_accuracy.tsv"
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../environment.yml"
    script:
        "../scripts/figure_final_accuracy.py"


rule figure_seed_spread:
    """Across-seed standard deviation of test accuracy at every epoch."""
    input:
        **FIGURE_TABLES["seed_spread"],
    output:
        **FIGURE_OUTPUTS["seed_spread"],
    params:
        code=code("figure_seed_spread.py"),
        analysis=config["analysis"],
        **FIGURE_ORDER,
    log:
        "results/logs/figures/seed_spread.log",
    benchmark:
        "results/benchmarks/figures/seed_spread.tsv"
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../environment.yml"
    script:
        "../scripts/figure_seed_spread.py"


rule figure_dt_distributions:
    """Histograms of the dt values the runs actually used (read from the saved models, not re-sampled)."""
    input:
        **FIGURE_TABLES["dt_distributions"],
    output:
        **FIGURE_OUTPUTS["dt_distributions"],
    params:
        code=code("figure_dt_distributions.py"),
        **FIGURE_ORDER,
    log:
        "results/logs/figures/dt_distributions.log",
    benchmark:
        "results/benchmarks/figures/dt_distributions.tsv"
    resources:
        mem_mb=4000,
        runtime=10,
    conda:
        "../../environment.yml"
    script:
        "../scripts/figure_dt_distributions.py"


rule figure_instability_counts:
    """Runs with a collapse, a divergence, or a class never predicted at the end, per dataset and variant."""
    input:
        **FIGURE_TABLES["instability_counts"],
    output:
        **FIGURE_OUTPUTS["instability_counts"],
    params:
        code=code("figure_instability_counts.py"),
        analysis=config["analysis"],
        **FIGURE_ORDER,
    log:
        "results/logs/figures/instability_counts.log",
    benchmark:
        "results/benchmarks/figures/instability_counts.tsv"
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../environment.yml"
    script:
        "../scripts/figure_instability_counts.py"


rule figure_free_residual:
    """Free-phase residual (convergence of the relaxation) vs epoch."""
    input:
        **FIGURE_TABLES["free_residual"],
    output:
        **FIGURE_OUTPUTS["free_residual"],
    params:
        code=code("figure_free_residual.py"),
        **FIGURE_ORDER,
    log:
        "results/logs/figures/free_residual.log",
    benchmark:
        "results/benchmarks/figures/free_residual.tsv"
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../environment.yml"
    script:
        "../scripts/figure_free_residual.py"
