from htsep.experiments.grid.paired_effects import write_paired
from htsep.rules import run_rule

run_rule(snakemake, lambda: write_paired(snakemake.input, snakemake.output[0], snakemake.params.analysis))
