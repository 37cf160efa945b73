from htsep.experiments.depth.analysis import write_shard
from htsep.rules import run_rule

run_rule(snakemake, lambda: write_shard(snakemake.input.summaries, snakemake.output, snakemake.params.failure))
