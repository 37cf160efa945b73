from htsep.rules import run_rule
from htsep.training.runs import train_runs

run_rule(snakemake, lambda: train_runs(snakemake.params.runs, {"train": snakemake.input.train,
                                                               "test": snakemake.input.test},
                                       snakemake.params.folders))
