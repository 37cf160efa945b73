from htsep.experiments.grid.stats import write_stats
from htsep.rules import run_rule

run_rule(snakemake, lambda: write_stats(snakemake.input, snakemake.output, snakemake.params.analysis,
                                          snakemake.params.protocol))
