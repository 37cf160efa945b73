from pathlib import Path

from htsep.experiments.depth.search import train_search_run
from htsep.rules import run_rule

run_rule(snakemake, lambda: train_search_run(snakemake.params.run,
                                             {"train": snakemake.input.train, "test": snakemake.input.test},
                                             Path(snakemake.output[0]).parent, snakemake.params.candidates))
