from htsep.experiments.grid.tables import aggregate_runs
from htsep.rules import run_rule

run_rule(snakemake, lambda: aggregate_runs(snakemake.input.summaries, snakemake.input.backprop, snakemake.output))
