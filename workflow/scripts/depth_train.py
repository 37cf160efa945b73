from pathlib import Path

from htsep.rules import run_rule
from htsep.training.sweeps import train_sweep

run_rule(snakemake, lambda: train_sweep([snakemake.params.run], [str(Path(snakemake.output[0]).parent)],
                                        {"train": snakemake.input.train, "test": snakemake.input.test},
                                        keep_model=False))
