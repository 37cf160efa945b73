from htsep.pipeline import run_rule
from htsep.spectra import spectral_experiment

run_rule(snakemake, lambda: spectral_experiment(
    snakemake.input.models, dict(zip(snakemake.params.spectral["datasets"], snakemake.input.test, strict=True)),
    snakemake.output, snakemake.params.spectral))
