from htsep.experiments.mechanism.spectra import spectral_experiment
from htsep.rules import run_rule

run_rule(snakemake, lambda: spectral_experiment(
    snakemake.input.models, dict(zip(snakemake.params.spectral["datasets"], snakemake.input.test, strict=True)),
    snakemake.output, snakemake.params.spectral))
