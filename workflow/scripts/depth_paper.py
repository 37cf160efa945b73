from htsep.experiments.depth.paper import depth_text
from htsep.rules import run_rule

run_rule(snakemake, lambda: depth_text(snakemake.input, snakemake.output, dict(snakemake.params.items())))
