from htsep.experiments.mechanism.paper import mechanism_macros
from htsep.rules import run_rule

run_rule(snakemake, lambda: mechanism_macros(snakemake.input, snakemake.output[0], dict(snakemake.params.items())))
