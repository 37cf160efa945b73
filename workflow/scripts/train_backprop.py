from pathlib import Path

from htsep.rules import run_rule
from htsep.training.backprop import train_backprop

run_rule(snakemake, lambda: train_backprop(snakemake.params.run, {"train": snakemake.input.train,
                                                                  "test": snakemake.input.test},
                                           Path(snakemake.output.summary).parent))
