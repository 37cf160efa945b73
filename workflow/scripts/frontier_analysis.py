from htsep.experiments.frontier.stats import write_frontier
from htsep.rules import run_rule

run_rule(snakemake, lambda: write_frontier(snakemake.input.records, snakemake.input.local, snakemake.output,
                                           dict(snakemake.params.items())))
