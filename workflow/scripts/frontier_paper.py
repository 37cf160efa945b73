from htsep.paper_frontier import frontier_text
from htsep.pipeline import run_rule

run_rule(snakemake, lambda: frontier_text(snakemake.input, snakemake.output[0], dict(snakemake.params.items())))
