from htsep.pipeline import run_rule
from htsep.plots import make_figure

run_rule(snakemake, lambda: make_figure("final_accuracy", snakemake.input, snakemake.output, snakemake.params))
