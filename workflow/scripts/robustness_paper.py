from htsep.experiments.robustness.paper import robustness_text
from htsep.rules import run_rule

run_rule(snakemake, lambda: robustness_text(snakemake.input, snakemake.output[0], dict(snakemake.params.items())))
