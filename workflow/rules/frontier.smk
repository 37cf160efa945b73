# The stability frontier (htsep.experiments.frontier: plan plans it, htsep.outcomes classifies its runs, stats fits
# it): `snakemake frontier_pilot` places the levels on the fit/validation split; `snakemake frontier` trains the
# shard config key frontier_shard names, writes its per-run tables to results/frontier/shards/ (keep them with
# `htsep records save`), and analyses them with every committed frontier shard under records.root (htsep.records).

from htsep.config import section_slice, variant_definitions  # noqa: E402
from htsep.experiments.frontier import plan as frontier_plan  # noqa: E402
from htsep.records import committed, declared_runs  # noqa: E402
from htsep.report.figures import BY_NAME  # noqa: E402
from htsep.experiments.frontier.plan import (  # noqa: E402
    shard_spec,
    level_job,
    pilot_axes,
    shard_name,
    stage_folders,
)

FRONTIER_SPEC = config["frontier"]
SHARD = shard_spec(config)
SHARD_TABLES = {shard_name(d, a, SHARD): (d, a) for d in SHARD["datasets"] for a in SHARD["axes"]}


FRONTIER_FAILURE = FRONTIER_SPEC["failure"]
FRONTIER_STATISTICS = section_slice(config, "frontier", ("bootstrap", "bootstrap_seed", "ci_level", "alpha", "power"))


for stage, split in (("pilot", ("fit", "validation")), ("sweep", ("train", "test"))):

    rule:
        name:
            f"frontier_{stage}_train"
        input:
            train=f"{DATA}/{{dataset}}/{split[0]}.pt",
            test=f"{DATA}/{{dataset}}/{split[1]}.pt",
        output:
            frontier_outputs(stage),
        log:
            f"results/logs/frontier/{stage}/{{dataset}}/{{axis}}/{{level}}.log",
        benchmark:
            f"results/benchmarks/frontier/{stage}/{{dataset}}/{{axis}}/{{level}}.tsv"
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
            code=code("frontier_train.py"),
            runs=lambda w, stage=stage: [run for _, run in level_job(config, stage, w.dataset, w.axis, w.level)],
            folders=lambda w, stage=stage: [f for f, _ in level_job(config, stage, w.dataset, w.axis, w.level)],
        script:
            "../scripts/frontier_train.py"


rule frontier_shard:
    """One (dataset, axis) part of this invocation's shard: one row per run (how and from when it failed)."""
    input:
        summaries=lambda w: frontier_shard_files(w, "summary.json"),
        metrics=lambda w: frontier_shard_files(w, "metrics.csv"),
    output:
        f"{FRONTIER}/shards/{{shard}}.runs.csv",
    log:
        f"results/logs/frontier/shards/{{shard}}.log",
    wildcard_constraints:
        shard="|".join(SHARD_TABLES) or "no-shard",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        code=code("frontier_shard.py"),
        failure=FRONTIER_FAILURE,
    script:
        "../scripts/frontier_shard.py"


rule frontier_pilot:
    """Target: the pilot's failure rate per level (the control variant, fit/validation split)."""
    input:
        [
            f"{folder}/summary.json"
            for d in FRONTIER_SPEC["datasets"]
            for a in pilot_axes(config)
            for folder in stage_folders(config, "pilot", d, a)
        ],
    output:
        runs=f"{FRONTIER}/pilot_runs.csv",
        table=report(f"{FRONTIER}/pilot.csv", category="Frontier", caption="../report/frontier_pilot.rst"),
    log:
        "results/logs/frontier/pilot.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        code=code("frontier_pilot.py"),
        failure=FRONTIER_FAILURE,
        alpha=FRONTIER_SPEC["alpha"],
    script:
        "../scripts/frontier_pilot.py"


rule frontier_analysis:
    """Every committed shard and this invocation's: failure rates, binomial GLMs with the LR test of the variant
    terms, critical levels with bootstrap CIs, the detectable shift, and how and when runs failed."""
    input:
        records=committed(config, "frontier", "runs"),
        local=list(frontier_plan.shard_tables(config)),
    output:
        runs=f"{FRONTIER}/runs.csv",
        cells=report(f"{FRONTIER}/cells.csv", category="Frontier", caption="../report/frontier_cells.rst"),
        fits=report(f"{FRONTIER}/fits.csv", category="Frontier", caption="../report/frontier_fits.rst"),
        critical=report(f"{FRONTIER}/critical.csv", category="Frontier", caption="../report/frontier_critical.rst"),
        curves=f"{FRONTIER}/curves.csv",
        provenance=f"{FRONTIER}/provenance.csv",
    log:
        "results/logs/frontier/analysis.log",
    benchmark:
        "results/benchmarks/frontier/analysis.tsv"
    conda:
        "../../environment.yml"
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        code=code("frontier_analysis.py"),
        variants=FRONTIER_SPEC["variants"],
        positive_control=frontier_plan.positive_control(FRONTIER_SPEC),
        declared=declared_runs(frontier_plan.declared(config)),
        statistics=FRONTIER_STATISTICS,
    script:
        "../scripts/frontier_analysis.py"


rule frontier:
    """Target: this invocation's shard, the analysis of all shards, the figure and the paper section."""
    input:
        rules.frontier_analysis.output,
        figure_files(config["run_protocols"], section="frontier"),
        f"{GENERATED_DIR}/frontier.tex",


rule frontier_paper:
    """The paper's Stability frontier section, every number and result sentence read from the frontier tables."""
    input:
        fits=rules.frontier_analysis.output.fits,
        critical=rules.frontier_analysis.output.critical,
        cells=rules.frontier_analysis.output.cells,
    output:
        f"{GENERATED_DIR}/frontier.tex",
    log:
        "results/logs/frontier/paper.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        code=code("frontier_paper.py"),
        frontier=FRONTIER_SPEC,
        caption=BY_NAME["frontier"].caption,
        variants=variant_definitions(config),
    script:
        "../scripts/frontier_paper.py"
