from htsep.experiments.mechanism.spectra import merge_spectra
from htsep.rules import run_rule

tables = ("runs", "spectral", "hist")
run_rule(snakemake, lambda: merge_spectra({name: snakemake.input[f"records_{name}"] for name in tables},
                                          {name: snakemake.input[f"local_{name}"] for name in tables
                                           if f"local_{name}" in snakemake.input.keys()},
                                          snakemake.output, snakemake.params.declared))
