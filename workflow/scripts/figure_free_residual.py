from htsep.pipeline import run_rule
from htsep.plots import make_figure

run_rule(snakemake, lambda: make_figure("free_residual", snakemake.input, snakemake.output, snakemake.params))
