from htsep.paper_mechanism import mechanism_macros
from htsep.pipeline import run_rule

run_rule(snakemake, lambda: mechanism_macros(snakemake.input, snakemake.output[0], dict(snakemake.params.items())))
