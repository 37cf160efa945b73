from htsep.experiments.frontier.stats import write_pilot
from htsep.rules import run_rule

run_rule(snakemake, lambda: write_pilot(snakemake.input, snakemake.output, dict(snakemake.params.items())))
