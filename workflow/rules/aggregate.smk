rule aggregate:
    """Per-run and per-epoch tables of the whole grid and the backprop reference (tidy, CSV and parquet), plus
    every EP run's sampled dt."""
    input:
        summaries=run_files("summary.json"),
        metrics=run_files("metrics.csv"),
        models=run_files("model.pt"),
        backprop=backprop_files("summary.json"),
        backprop_metrics=backprop_files("metrics.csv"),
    output:
        runs_csv=report(f"{TABLES}/runs.csv", category="Tables", caption="../report/runs.rst"),
        runs=f"{TABLES}/runs.parquet",
        epochs_csv=f"{TABLES}/epochs.csv",
        epochs=f"{TABLES}/epochs.parquet",
        dt=f"{TABLES}/dt_values.parquet",
    log:
        "results/logs/aggregate.log",
    benchmark:
        "results/benchmarks/aggregate.tsv"
    conda:
        "../../environment.yml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        code=code("aggregate.py"),
    script:
        "../scripts/aggregate.py"
