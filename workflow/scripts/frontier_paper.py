from htsep.experiments.frontier.paper import frontier_text
from htsep.rules import run_rule

run_rule(snakemake, lambda: frontier_text(snakemake.input, snakemake.output[0], dict(snakemake.params.items())))
