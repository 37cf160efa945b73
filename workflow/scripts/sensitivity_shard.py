from htsep.experiments.sensitivity.analysis import write_shard
from htsep.rules import run_rule

run_rule(snakemake, lambda: write_shard(snakemake.input, snakemake.output[0], snakemake.params.failure))
