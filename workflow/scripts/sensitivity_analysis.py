from htsep.experiments.sensitivity.analysis import write_sensitivity
from htsep.rules import run_rule

run_rule(snakemake, lambda: write_sensitivity(snakemake.input.records, snakemake.input.shard, snakemake.output,
                                              dict(snakemake.params.items())))
