from htsep.experiments.robustness.analysis import write_robustness
from htsep.experiments.robustness.plan import TABLES
from htsep.rules import run_rule

shards = {name: snakemake.input[f"shard_{name}"] for name in TABLES if f"shard_{name}" in snakemake.input.keys()}
run_rule(snakemake, lambda: write_robustness(
    {name: snakemake.input[f"records_{name}"] for name in TABLES}, shards, snakemake.output,
    dict(snakemake.params.items())))
