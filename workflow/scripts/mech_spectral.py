from htsep.mechanism import spectral_experiment
from htsep.pipeline import run_rule

run_rule(snakemake, lambda: spectral_experiment(
    snakemake.input.models, dict(zip(snakemake.params.datasets, snakemake.input.test, strict=True)),
    snakemake.output, {"spectral": snakemake.params.spectral, "variants": snakemake.params.variants}))
