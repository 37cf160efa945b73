# The calibration searches behind the searched protocols and the backprop setting (htsep.experiments.calibration):
# snakemake calibrate. Each trains on a dataset's fit split and scores on its validation split.

from htsep.config import BACKPROP, dataset_label, section_slice  # noqa: E402
from htsep.experiments.calibration import plan as calibration_plan  # noqa: E402
from htsep.experiments.calibration.plan import calibration_run  # noqa: E402
from htsep.records import committed, declared_runs  # noqa: E402
from htsep.report.figures import BY_NAME, figure_files  # noqa: E402

CALIBRATION_SLICE = {"calibration": section_slice(config, "calibration")}  # what the table and selection read


rule calibrate_run:
    """One (dataset, variant, search point, seed) of a calibration search: trained on the fit split, scored on
    validation (variant backprop: the backprop reference)."""
    input:
        train=f"{DATA}/{{dataset}}/fit.pt",
        test=f"{DATA}/{{dataset}}/validation.pt",
    output:
        metrics=f"{CALIBRATION}/{{dataset}}/{{variant}}/{{point}}/seed{{seed}}/metrics.csv",
        summary=f"{CALIBRATION}/{{dataset}}/{{variant}}/{{point}}/seed{{seed}}/summary.json",
        model=f"{CALIBRATION}/{{dataset}}/{{variant}}/{{point}}/seed{{seed}}/model.pt",
    log:
        f"results/logs/calibration/{{dataset}}/{{variant}}/{{point}}/seed{{seed}}.log",
    benchmark:
        f"results/benchmarks/calibration/{{dataset}}/{{variant}}/{{point}}/seed{{seed}}.tsv"
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
        code=code("calibrate_run.py"),
        kind=lambda w: "backprop" if w.variant == BACKPROP else "ep",
        run=lambda w: calibration_run(config, w.dataset, w.variant, w.point, int(w.seed)),
    script:
        "../scripts/calibrate_run.py"


rule calibration_shard:
    """This invocation's search runs as a shard (commit it under benchmarks/records/<date>-calibration/shards/)."""
    input:
        calibration_summaries(),
    output:
        calibration_plan.SHARD["runs"],
    log:
        "results/logs/calibration_shard.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        code=code("calibration_shard.py"),
    script:
        "../scripts/calibration_shard.py"


rule calibration:
    """The search table and the selected settings with the rule that selected them, from the committed search
    shards and this invocation's (the figure: analysis.smk)."""
    input:
        records=committed(config, "calibration", "runs"),
        shard=rules.calibration_shard.output[0],
    output:
        table=report(f"{CALIBRATION}/calibration.csv", category="Calibration", caption="../report/calibration.rst"),
        selection=f"{CALIBRATION}/selection.json",
        provenance=f"{CALIBRATION}/provenance.csv",
    log:
        "results/logs/calibration.log",
    benchmark:
        "results/benchmarks/calibration.tsv"
    conda:
        "../../environment.yml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        code=code("calibration.py"),
        config=CALIBRATION_SLICE,
        declared=declared_runs(calibration_plan.declared(config)),
    script:
        "../scripts/calibration.py"


rule calibration_paper:
    """The paper's calibration appendix: the search, the rule, the selection and every point's score."""
    input:
        table=rules.calibration.output.table,
        selection=rules.calibration.output.selection,
    output:
        f"{GENERATED_DIR}/calibration.tex",
    log:
        "results/logs/calibration_paper.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        code=code("calibration_paper.py"),
        config=CALIBRATION_SLICE,
        caption=BY_NAME["calibration"].caption,
        labels={
            name: dataset_label(name, config["data"][name].get("split", "official"))
            for name in sorted({config["calibration"]["dataset"], *calibration_plan.backprop_datasets(config)})
        },
    script:
        "../scripts/calibration_paper.py"


rule calibrate:
    """Target: the calibration search, its selection, figure and appendix."""
    input:
        rules.calibration.output,
        rules.calibration_paper.output,
        figure_files(config["run_protocols"], section="calibration"),
