from htsep.pipeline import run_rule
from htsep.splits import write_validation_split

run_rule(snakemake, lambda: write_validation_split(snakemake.input.train, snakemake.output,
                                                   **snakemake.params.validation))
