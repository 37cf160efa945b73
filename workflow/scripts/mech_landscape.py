from htsep.experiments.mechanism.landscape import landscape_tables
from htsep.rules import run_rule

run_rule(snakemake, lambda: landscape_tables(snakemake.input.records, snakemake.input.shard, snakemake.output,
                                             dict(snakemake.params.items())))
