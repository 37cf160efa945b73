from htsep.experiments.confirmatory.design import write_design
from htsep.rules import run_rule

run_rule(snakemake, lambda: write_design(snakemake.input, snakemake.output[0], dict(snakemake.params.items())))
