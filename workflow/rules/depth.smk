# The question at depth (htsep.experiments.depth): the deeper network's search on the validation split (its runs as a
# shard, merged with the committed depth search shards into the selection of the protocol and the two T1 levels), the
# runs at both levels (one job per run, a shard of runs and epochs), the paired tests, the figure (analysis.smk) and
# the paper section. `snakemake depth` builds all of it.

from htsep.config import section_slice
from htsep.experiments.depth import plan as depth_plan

DEPTH_SPEC = config["depth"]
DEPTH_SEARCH = depth_plan.declared_search(config)
DEPTH_RUNS = depth_plan.declared(config)
DEPTH_SEARCH_FOLDERS = depth_plan.searched_here(config)
DEPTH_FOLDERS = depth_plan.trained_here(config)
# what the analysis reads (not the search: editing it reruns the search and selection only)
DEPTH_STATISTICS = section_slice(
    config,
    "depth",
    ("contrasts", "equivalence", "bootstrap", "bootstrap_seed", "ci_level", "alpha", "power", "simulations"),
)


rule depth_search_run:
    """One point of the depth search: the reference variant trained on the fit split, scored on validation, then its
    free phase on the validation probe at every candidate T1."""
    input:
        train=f"{DATA}/{{dataset}}/fit.pt",
        test=f"{DATA}/{{dataset}}/validation.pt",
    output:
        f"{depth_plan.SEARCH_RUN}/metrics.csv",
        f"{depth_plan.SEARCH_RUN}/summary.json",
        f"{depth_plan.SEARCH_RUN}/model.pt",
        f"{depth_plan.SEARCH_RUN}/{depth_plan.PROFILE}",
    log:
        f"results/logs/{depth_plan.SEARCH_RUN}.log",
    benchmark:
        f"results/benchmarks/{depth_plan.SEARCH_RUN}.tsv"
    wildcard_constraints:
        point="[A-Za-z0-9_.-]+",
    group:
        "train"
    conda:
        "../../environment.yml"
    threads: config["training"].get("threads", 1)
    resources:
        **TRAIN_RESOURCES,
    params:
        code=code("depth_search_run.py"),
        run=lambda w: DEPTH_SEARCH[(w.dataset, w.variant, w.point, int(w.seed))],
        candidates=DEPTH_SPEC["free_steps"]["candidates"],
    script:
        "../scripts/depth_search_run.py"


rule depth_search_shard:
    """This invocation's depth search runs as a shard: the calibration's columns and each run's free-phase profile."""
    input:
        summaries=[f"{folder}/summary.json" for folder in DEPTH_SEARCH_FOLDERS],
        profiles=[f"{folder}/{depth_plan.PROFILE}" for folder in DEPTH_SEARCH_FOLDERS],
    output:
        depth_plan.SHARD["search"],
    log:
        "results/logs/depth/search_shard.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        code=code("depth_search_shard.py"),
    script:
        "../scripts/depth_search_shard.py"


rule depth_search:
    """The depth search table and its selection (the protocol point, the T1 levels) from the committed depth search
    shards and this invocation's."""
    input:
        records=committed(config, "depth", "search"),
        shard=[] if config["records"]["train"] == "none" else rules.depth_search_shard.output,
    output:
        table=f"{DEPTH}/search.csv",
        selection=f"{DEPTH}/selection.json",
        provenance=f"{DEPTH}/search_provenance.csv",
    log:
        "results/logs/depth/search.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        code=code("depth_search.py"),
        depth=section_slice(config, "depth", ("search", "free_steps", "protocol")),
        points=depth_plan.search_points(config),
        declared=declared_runs(DEPTH_SEARCH),
    script:
        "../scripts/depth_search.py"


rule depth_train:
    """One depth run: the depth protocol at one T1."""
    input:
        train=f"{DATA}/{{dataset}}/train.pt",
        test=f"{DATA}/{{dataset}}/test.pt",
    output:
        f"{depth_plan.RUN}/metrics.csv",
        f"{depth_plan.RUN}/summary.json",
    log:
        f"results/logs/{depth_plan.RUN}.log",
    benchmark:
        f"results/benchmarks/{depth_plan.RUN}.tsv"
    wildcard_constraints:
        free_steps=r"\d+",
    group:
        "train"
    conda:
        "../../environment.yml"
    threads: config["training"].get("threads", 1)
    resources:
        **TRAIN_RESOURCES,
    params:
        code=code("depth_train.py"),
        run=lambda w: DEPTH_RUNS[(w.dataset, int(w.free_steps), w.variant, int(w.seed))],
    script:
        "../scripts/depth_train.py"


rule depth_shard:
    """This invocation's depth runs as a shard: one row per run (how, and whether, it failed), one per run and
    epoch."""
    input:
        summaries=[f"{folder}/summary.json" for folder in DEPTH_FOLDERS],
        metrics=[f"{folder}/metrics.csv" for folder in DEPTH_FOLDERS],
    output:
        runs=depth_plan.SHARD["runs"],
        epochs=depth_plan.SHARD["epochs"],
    log:
        "results/logs/depth/shard.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        code=code("depth_shard.py"),
        failure=DEPTH_SPEC["failure"],
    script:
        "../scripts/depth_shard.py"


rule depth_analysis:
    """Cells, the paired tests at each T1 and the per-layer residuals from the committed depth shards and this
    invocation's, each declared run once."""
    input:
        unpack(
            lambda w: (
                {}
                if config["records"]["train"] == "none"
                else {f"shard_{name}": rules.depth_shard.output[name] for name in ("runs", "epochs")}
            )
        ),
        records_runs=committed(config, "depth", "runs"),
        records_epochs=committed(config, "depth", "epochs"),
    output:
        runs=f"{DEPTH}/runs.csv",
        cells=f"{DEPTH}/cells.csv",
        tests=report(f"{DEPTH}/tests.csv", category="Depth", caption="../report/depth.rst"),
        residuals=f"{DEPTH}/residuals.csv",
        provenance=f"{DEPTH}/provenance.csv",
    log:
        "results/logs/depth/analysis.log",
    benchmark:
        "results/benchmarks/depth/analysis.tsv"
    conda:
        "../../environment.yml"
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        code=code("depth_analysis.py"),
        depth=DEPTH_STATISTICS,
        levels=depth_plan.levels(config),
        datasets=DEPTH_SPEC["datasets"],
        declared=declared_runs(DEPTH_RUNS),
    script:
        "../scripts/depth_analysis.py"


rule depth_paper:
    """The paper's depth section."""
    input:
        selection=rules.depth_search.output.selection,
        search=rules.depth_search.output.table,
        cells=rules.depth_analysis.output.cells,
        tests=rules.depth_analysis.output.tests,
        residuals=rules.depth_analysis.output.residuals,
    output:
        section=f"{GENERATED_DIR}/depth.tex",
        abstract=f"{GENERATED_DIR}/depth_abstract.tex",
    log:
        "results/logs/depth/paper.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        code=code("depth_paper.py"),
        depth=DEPTH_SPEC,
        training=section_slice(config, "training", ("free_steps", "residual_tol")),
        caption=BY_NAME["depth"].caption,
    script:
        "../scripts/depth_paper.py"


rule depth:
    """Target: the depth search, tables, figure and paper section."""
    input:
        rules.depth_search.output,
        rules.depth_analysis.output,
        figure_files(config["run_protocols"], section="depth"),
        rules.depth_paper.output,
