from htsep.data.splits import write_validation_split
from htsep.rules import run_rule

run_rule(snakemake, lambda: write_validation_split(snakemake.input.train, snakemake.output,
                                                   **snakemake.params.validation))
