from htsep.experiments.grid.paper import write_generated
from htsep.rules import run_rule

run_rule(snakemake, lambda: write_generated(snakemake.input, snakemake.output, snakemake.params.setup,
                                            snakemake.params.analysis))
