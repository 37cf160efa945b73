from htsep.report.figures import make_figure
from htsep.rules import run_rule

run_rule(snakemake, lambda: make_figure(snakemake.params.figure, snakemake.input, snakemake.output, snakemake.params))
