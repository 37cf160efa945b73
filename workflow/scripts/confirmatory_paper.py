from htsep.experiments.confirmatory.paper import confirmatory_text
from htsep.rules import run_rule

run_rule(snakemake, lambda: confirmatory_text(snakemake.input, snakemake.output, dict(snakemake.params.items())))
