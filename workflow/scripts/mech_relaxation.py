from htsep.mechanism import relaxation_figure
from htsep.pipeline import run_rule

run_rule(snakemake, lambda: relaxation_figure(snakemake.input.epochs, snakemake.output, dict(snakemake.params.items())))
