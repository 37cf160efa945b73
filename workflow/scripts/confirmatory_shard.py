from htsep.experiments.confirmatory.plan import KEYS
from htsep.outcomes import write_outcomes
from htsep.rules import run_rule

run_rule(snakemake, lambda: write_outcomes(snakemake.input.summaries, snakemake.output[0], snakemake.params.failure,
                                           KEYS))
