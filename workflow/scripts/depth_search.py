from htsep.experiments.depth.search import write_search
from htsep.rules import run_rule

run_rule(snakemake, lambda: write_search(snakemake.input.records, snakemake.input.shard, snakemake.output,
                                         dict(snakemake.params.items())))
