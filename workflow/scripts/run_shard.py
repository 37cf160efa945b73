from htsep.rules import run_rule
from htsep.run_tables import write_shard

run_rule(snakemake, lambda: write_shard(snakemake.input.summaries, snakemake.output))
