from pathlib import Path

from htsep.rules import run_rule
from htsep.training.runs import train_run

run_rule(snakemake, lambda: train_run(snakemake.params.run, {"train": snakemake.input.train,
                                                             "test": snakemake.input.test},
                                      Path(snakemake.output.summary).parent))
