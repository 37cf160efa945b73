from htsep.experiments.calibration.paper import calibration_text
from htsep.rules import run_rule

run_rule(snakemake, lambda: calibration_text(snakemake.input, snakemake.output[0], snakemake.params.config,
                                             snakemake.params.caption, snakemake.params.labels))
