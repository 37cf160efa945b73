from htsep.experiments.depth.analysis import write_depth
from htsep.rules import run_rule

shards = {name: snakemake.input[f"shard_{name}"]
          for name in ("runs", "epochs") if f"shard_{name}" in snakemake.input.keys()}
run_rule(snakemake, lambda: write_depth(
    {"runs": snakemake.input.records_runs, "epochs": snakemake.input.records_epochs},
    shards, snakemake.output, dict(snakemake.params.items())))
