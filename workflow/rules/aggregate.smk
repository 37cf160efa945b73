# The grid's tables, per protocol (htsep.experiments.grid.tables): this invocation's runs as a shard, and the shards
# committed under records.root merged with it (htsep.records), each declared run once.

from htsep.experiments.grid import plan as grid_plan
from htsep.records import committed, declared_runs


rule grid_shard:
    """This invocation's runs of one protocol as a shard: one row per run, one per run and epoch (commit them under
    benchmarks/records/<date>-grid/shards/ to keep them)."""
    input:
        summaries=lambda w: [f"{folder}/summary.json" for folder in grid_plan.trained_here(config, w.protocol)],
        metrics=lambda w: [f"{folder}/metrics.csv" for folder in grid_plan.trained_here(config, w.protocol)],
    output:
        **grid_plan.shard_tables("{protocol}"),
    log:
        "results/logs/grid_shard/{protocol}.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        code=code("run_shard.py"),
    script:
        "../scripts/run_shard.py"


rule aggregate:
    """One protocol's per-run and per-epoch tables (tidy, CSV and parquet) from the committed shards and this
    invocation's, every EP run's dt, and where each row came from."""
    input:
        records_runs=committed(config, "grid", "runs"),
        records_epochs=committed(config, "grid", "epochs"),
        shard_runs=rules.grid_shard.output.runs,
        shard_epochs=rules.grid_shard.output.epochs,
    output:
        runs_csv=report(f"{TABLES}/{{protocol}}/runs.csv", category="Tables", caption="../report/runs.rst"),
        runs=f"{TABLES}/{{protocol}}/runs.parquet",
        epochs_csv=f"{TABLES}/{{protocol}}/epochs.csv",
        epochs=f"{TABLES}/{{protocol}}/epochs.parquet",
        dt=f"{TABLES}/{{protocol}}/dt_values.parquet",
        provenance=f"{TABLES}/{{protocol}}/provenance.csv",
    log:
        "results/logs/aggregate/{protocol}.log",
    benchmark:
        "results/benchmarks/aggregate/{protocol}.tsv"
    conda:
        "../../environment.yml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        code=code("aggregate.py"),
        declared=lambda w: declared_runs(grid_plan.declared(config, w.protocol)),
    script:
        "../scripts/aggregate.py"
