from htsep.experiments.frontier.stats import write_frontier
from htsep.rules import run_rule

run_rule(snakemake, lambda: write_frontier(snakemake.input.shards, snakemake.output, dict(snakemake.params.items())))
