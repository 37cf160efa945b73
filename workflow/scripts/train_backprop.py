from pathlib import Path

from htsep.backprop import train_backprop
from htsep.pipeline import run_rule

run_rule(snakemake, lambda: train_backprop(snakemake.params.run, {"train": snakemake.input.train,
                                                                  "test": snakemake.input.test},
                                           Path(snakemake.output.summary).parent))
