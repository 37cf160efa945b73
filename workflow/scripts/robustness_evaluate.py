from htsep.experiments.robustness.evaluate import evaluate_model
from htsep.rules import run_rule

run_rule(snakemake, lambda: evaluate_model(snakemake.input.model, snakemake.input.test, snakemake.params.robustness,
                                           snakemake.output))
