from htsep.experiments.confirmatory.primary import write_primary
from htsep.rules import run_rule

run_rule(snakemake, lambda: write_primary(snakemake.input.records, snakemake.input.shard, snakemake.output,
                                          dict(snakemake.params.items())))
