from htsep.report.provenance import provenance_text
from htsep.rules import run_rule

run_rule(snakemake, lambda: provenance_text(snakemake.input, snakemake.output[0], snakemake.params.root))
