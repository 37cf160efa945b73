from htsep.mechanism import train_sweep
from htsep.pipeline import run_rule

run_rule(snakemake, lambda: train_sweep(snakemake.params.runs, snakemake.params.folders,
                                        {"train": snakemake.input.train, "test": snakemake.input.test}))
