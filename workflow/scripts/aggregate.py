from htsep.aggregate import aggregate_runs
from htsep.pipeline import run_rule

run_rule(snakemake, lambda: aggregate_runs(snakemake.input.summaries, snakemake.input.backprop, snakemake.output))
