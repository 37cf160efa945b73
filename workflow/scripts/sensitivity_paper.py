from htsep.experiments.sensitivity.paper import sensitivity_text
from htsep.rules import run_rule

run_rule(snakemake, lambda: sensitivity_text(snakemake.input, snakemake.output[0], dict(snakemake.params.items())))
