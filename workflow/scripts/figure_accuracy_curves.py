from htsep.pipeline import run_rule
from htsep.plots import make_figure

run_rule(snakemake, lambda: make_figure("accuracy_curves", snakemake.input, snakemake.output, snakemake.params))
