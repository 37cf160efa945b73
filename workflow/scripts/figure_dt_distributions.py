from htsep.pipeline import run_rule
from htsep.plots import make_figure

run_rule(snakemake, lambda: make_figure("dt_distributions", snakemake.input, snakemake.output, snakemake.params))
