from htsep.calibration import write_calibration
from htsep.pipeline import run_rule

run_rule(snakemake, lambda: write_calibration(snakemake.input, snakemake.output, snakemake.params.config))
