from htsep.experiments.factorial.paper import factorial_text
from htsep.rules import run_rule

run_rule(snakemake, lambda: factorial_text(snakemake.input, snakemake.output[0], dict(snakemake.params.items())))
