from htsep.experiments.robustness.evaluate import write_shard
from htsep.experiments.robustness.plan import TABLES
from htsep.rules import run_rule

run_rule(snakemake, lambda: write_shard({name: snakemake.input[name] for name in TABLES}, snakemake.output))
