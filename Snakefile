"""htsep: heterogeneous time steps in Equilibrium Propagation, from config.yaml to tables, figures and paper.

snakemake --cores N                                   # the whole study (config/config.yaml)
snakemake --cores 2 --configfile config/test.yaml     # the CI-sized study on synthetic data
snakemake --cores N figures/accuracy_curves.pdf       # one artifact and what it needs
"""

import functools
import sys
from pathlib import Path

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "config/schema.yaml")

sys.path.insert(0, str(Path(workflow.basedir) / "src"))
from htsep.config import (  # noqa: E402
    backprop_slice,
    data_slice,
    protocol_training,
    run_slice,
    validation_slice,
)
from htsep.paths import (
    BACKPROP_RUNS,
    CALIBRATION,
    CONFIRMATORY,
    DEPTH,
    FACTORIAL,
    FRONTIER,
    GENERATED_DIR,
    LANDSCAPE,
    MECHANISM,
    ROBUSTNESS,
    RUN_LAYOUT,
    RUNS,
    SENSITIVITY,
    TABLES,
)  # noqa: E402
from htsep.experiments.grid.plan import protocols as grid_protocols  # noqa: E402
from htsep.study import check_config, stacked_members  # noqa: E402

check_config(config)

DATA = config["data"]["root"]
RUN_FILES = ["metrics.csv", "summary.json", "model.pt"]


wildcard_constraints:
    protocol="[A-Za-z0-9_.-]+",
    dataset="mnist|kmnist|fashion_mnist|synthetic",
    variant="[A-Za-z0-9_.-]+",
    seed=r"\d+",


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/calibration.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/paper.smk"
include: "workflow/rules/mechanism.smk"
include: "workflow/rules/frontier.smk"
include: "workflow/rules/confirmatory.smk"
include: "workflow/rules/factorial.smk"
include: "workflow/rules/robustness.smk"
include: "workflow/rules/sensitivity.smk"
include: "workflow/rules/depth.smk"


# Light rules run where snakemake runs, not as cluster jobs (only training goes to SLURM); so do the figure rules
# (localrule: True where analysis.smk makes them).
localrules:
    all,
    prepare_data,
    aggregate,
    stats,
    paper_macros,
    paper,
    mech_landscape,
    frontier_pilot,
    frontier_analysis,
    frontier_paper,
    confirmatory_tests,
    factorial_analysis,
    factorial_paper,
    robustness_analysis,
    robustness_paper,
    sensitivity_analysis,
    sensitivity_paper,
    depth_analysis,
    depth_paper,
    calibration_paper,
    mechanism_paper,
    mechanism,


rule all:
    default_target: True
    input:
        expand(f"{TABLES}/{{protocol}}/{{table}}", protocol=grid_protocols(config), table=["runs.csv", "stats.csv"]),
        figure_files(config["run_protocols"]),
        rules.paper.output.pdf,
