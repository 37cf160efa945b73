from htsep.mechanism import landscape_analysis
from htsep.pipeline import run_rule

run_rule(snakemake, lambda: landscape_analysis(snakemake.input.summaries, snakemake.output,
                                               dict(snakemake.params.items())))
