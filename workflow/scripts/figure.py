from htsep.figures import make_figure
from htsep.pipeline import run_rule

run_rule(snakemake, lambda: make_figure(snakemake.params.figure, snakemake.input, snakemake.output, snakemake.params))
