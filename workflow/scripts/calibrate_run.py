from pathlib import Path

from htsep.experiments.calibration.runs import train_point
from htsep.rules import run_rule

run_rule(snakemake, lambda: train_point(snakemake.params.kind, snakemake.params.run,
                                        {"train": snakemake.input.train, "test": snakemake.input.test},
                                        Path(snakemake.output.summary).parent))
