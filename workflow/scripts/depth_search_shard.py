from htsep.experiments.depth.search import write_search_shard
from htsep.rules import run_rule

run_rule(snakemake, lambda: write_search_shard(snakemake.input.summaries, snakemake.output[0]))
