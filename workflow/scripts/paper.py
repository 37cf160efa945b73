from htsep.report.tex import build_pdf
from htsep.rules import run_rule

run_rule(snakemake, lambda: build_pdf(snakemake.input.tex, snakemake.output.pdf, snakemake.output.latex_log))
