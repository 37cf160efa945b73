from htsep.paper_calibration import calibration_text
from htsep.pipeline import run_rule

run_rule(snakemake, lambda: calibration_text(snakemake.input, snakemake.output[0], snakemake.params.config))
