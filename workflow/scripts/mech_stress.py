from htsep.outcomes import stress_tables
from htsep.pipeline import run_rule

run_rule(snakemake, lambda: stress_tables(snakemake.input.summaries, snakemake.output, dict(snakemake.params.items())))
