from htsep.rules import run_rule
from htsep.training.runs import train_job

run_rule(snakemake, lambda: train_job(snakemake.params.runs, {"train": snakemake.input.train,
                                                              "test": snakemake.input.test},
                                      snakemake.params.folders, snakemake.params.stack))
