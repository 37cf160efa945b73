from pathlib import Path

from htsep.data.prepare import prepare_from_slice
from htsep.rules import run_rule

run_rule(snakemake, lambda: prepare_from_slice(snakemake.params.dataset, Path(snakemake.output.train).parent.parent))
