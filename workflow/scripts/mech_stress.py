from htsep.mechanism import stress_analysis
from htsep.pipeline import run_rule

run_rule(snakemake, lambda: stress_analysis(snakemake.input.summaries, snakemake.output,
                                            dict(snakemake.params.items())))
