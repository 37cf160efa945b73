from pathlib import Path

from htsep.pipeline import run_rule
from htsep.train import train_run

run_rule(snakemake, lambda: train_run(snakemake.params.run, {"train": snakemake.input.train,
                                                             "test": snakemake.input.test},
                                      Path(snakemake.output.summary).parent))
