from htsep.experiments.grid.tables import aggregate
from htsep.rules import run_rule

run_rule(snakemake, lambda: aggregate({"runs": snakemake.input.records_runs, "epochs": snakemake.input.records_epochs},
                                      {"runs": snakemake.input.shard_runs, "epochs": snakemake.input.shard_epochs},
                                      snakemake.output, snakemake.params.declared))
