# Where dt acts (htsep.experiments.sensitivity): one training key of the protocol changed at a time, every level x
# variant x seed trained (one job per run), this invocation's runs as a shard, merged with the committed sensitivity
# shards into cells, paired contrasts beside the positive control and mixed-model tests, the figure (analysis.smk) and
# the paper section. `snakemake sensitivity` builds all of it.

from htsep.config import section_slice
from htsep.experiments.sensitivity import plan as sensitivity_plan

SENSITIVITY_SPEC = config["sensitivity"]
SENSITIVITY_RUNS = sensitivity_plan.declared(config)
SENSITIVITY_FOLDERS = sensitivity_plan.trained_here(config)
SENSITIVITY_VALUES = {axis: sensitivity_plan.protocol_value(config, axis) for axis in SENSITIVITY_SPEC["run_axes"]}
# what the analysis reads (not the axes' predictions and outcomes: editing those reruns only the paper)
SENSITIVITY_STATISTICS = section_slice(
    config,
    "sensitivity",
    ("contrast", "positive_control", "bootstrap", "bootstrap_seed", "ci_level", "alpha", "power", "simulations"),
)


rule sensitivity_train:
    """One sensitivity run: the protocol with one training key at one level."""
    input:
        train=f"{DATA}/{{dataset}}/train.pt",
        test=f"{DATA}/{{dataset}}/test.pt",
    output:
        f"{sensitivity_plan.RUN}/metrics.csv",
        f"{sensitivity_plan.RUN}/summary.json",
    log:
        f"results/logs/{sensitivity_plan.RUN}.log",
    benchmark:
        f"results/benchmarks/{sensitivity_plan.RUN}.tsv"
    wildcard_constraints:
        axis="[A-Za-z0-9_]+",
        level=r"[0-9.e+-]+",
    group:
        "train"
    conda:
        "../../environment.yml"
    threads: config["training"].get("threads", 1)
    resources:
        **TRAIN_RESOURCES,
    params:
        code=code("sensitivity_train.py"),
        run=lambda w: SENSITIVITY_RUNS[(w.dataset, w.axis, float(w.level), w.variant, int(w.seed))],
    script:
        "../scripts/sensitivity_train.py"


rule sensitivity_shard:
    """This invocation's sensitivity runs as a shard: one row per run, how (and whether) it failed."""
    input:
        summaries=[f"{folder}/summary.json" for folder in SENSITIVITY_FOLDERS],
        metrics=[f"{folder}/metrics.csv" for folder in SENSITIVITY_FOLDERS],
    output:
        sensitivity_plan.SHARD["runs"],
    log:
        "results/logs/sensitivity/shard.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        code=code("sensitivity_shard.py"),
        failure=SENSITIVITY_SPEC["failure"],
    script:
        "../scripts/sensitivity_shard.py"


rule sensitivity_analysis:
    """Cells, paired contrasts beside the positive control and mixed-model tests from the committed sensitivity
    shards and this invocation's, each declared run once."""
    input:
        records=committed(config, "sensitivity", "runs"),
        shard=[] if config["records"]["train"] == "none" else rules.sensitivity_shard.output,
    output:
        runs=f"{SENSITIVITY}/runs.csv",
        cells=f"{SENSITIVITY}/cells.csv",
        contrasts=report(f"{SENSITIVITY}/contrasts.csv", category="Sensitivity", caption="../report/sensitivity.rst"),
        models=f"{SENSITIVITY}/models.csv",
        provenance=f"{SENSITIVITY}/provenance.csv",
    log:
        "results/logs/sensitivity/analysis.log",
    benchmark:
        "results/benchmarks/sensitivity/analysis.tsv"
    conda:
        "../../environment.yml"
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        code=code("sensitivity_analysis.py"),
        sensitivity=SENSITIVITY_STATISTICS,
        protocol_values=SENSITIVITY_VALUES,
        declared=declared_runs(SENSITIVITY_RUNS),
    script:
        "../scripts/sensitivity_analysis.py"


rule sensitivity_paper:
    """The paper's sensitivity section."""
    input:
        cells=rules.sensitivity_analysis.output.cells,
        contrasts=rules.sensitivity_analysis.output.contrasts,
        models=rules.sensitivity_analysis.output.models,
    output:
        f"{GENERATED_DIR}/sensitivity.tex",
    log:
        "results/logs/sensitivity/paper.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        code=code("sensitivity_paper.py"),
        sensitivity=SENSITIVITY_SPEC,
        protocol_values=SENSITIVITY_VALUES,
        caption=BY_NAME["sensitivity"].caption,
    script:
        "../scripts/sensitivity_paper.py"


rule sensitivity:
    """Target: the sensitivity tables, figure and paper section."""
    input:
        rules.sensitivity_analysis.output,
        figure_files(config["run_protocols"], section="sensitivity"),
        rules.sensitivity_paper.output,
