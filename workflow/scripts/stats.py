from htsep.pipeline import run_rule
from htsep.stats import write_stats

run_rule(snakemake, lambda: write_stats(snakemake.input, snakemake.output, snakemake.params.analysis))
