from htsep.experiments.calibration.selection import write_calibration
from htsep.rules import run_rule

run_rule(snakemake, lambda: write_calibration(snakemake.input.records, snakemake.input.shard, snakemake.output,
                                              snakemake.params.config, snakemake.params.declared))
