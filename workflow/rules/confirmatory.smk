# The preregistered primary tests (htsep.experiments.confirmatory): the confirmatory runs (trained by the train rule,
# the grid's layout, on the preregistered seeds) as a shard, merged with the committed confirmatory shards, the paired
# tests, the forest plot (analysis.smk) and the paper section. `snakemake confirmatory` builds all of it.

from htsep.config import dataset_label, variant_definitions
from htsep.experiments.confirmatory import plan as confirmatory_plan

PREREGISTRATION = config["preregistration"]
CONFIRMATORY_FOLDERS = confirmatory_plan.trained_here(config)


rule confirmatory_shard:
    """This invocation's confirmatory runs as a shard: one row per run, how (and whether) it failed."""
    input:
        summaries=[f"{folder}/summary.json" for folder in CONFIRMATORY_FOLDERS],
        metrics=[f"{folder}/metrics.csv" for folder in CONFIRMATORY_FOLDERS],
    output:
        confirmatory_plan.SHARD["runs"],
    log:
        "results/logs/confirmatory/shard.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        code=code("confirmatory_shard.py"),
        failure=PREREGISTRATION["failure"],
    script:
        "../scripts/confirmatory_shard.py"


rule confirmatory_tests:
    """The primary tests from the committed confirmatory shards and this invocation's, each declared run once."""
    input:
        records=committed(config, "confirmatory", "runs"),
        shard=[] if config["records"]["train"] == "none" else rules.confirmatory_shard.output,
    output:
        runs=f"{CONFIRMATORY}/runs.csv",
        tests=report(f"{CONFIRMATORY}/primary.csv", category="Confirmatory", caption="../report/confirmatory.rst"),
        provenance=f"{CONFIRMATORY}/provenance.csv",
    log:
        "results/logs/confirmatory/tests.log",
    conda:
        "../../environment.yml"
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        code=code("confirmatory_tests.py"),
        preregistration=PREREGISTRATION,
        protocols=config["run_protocols"],
        datasets=config["datasets"],
        declared=declared_runs(
            {key: run for p in config["run_protocols"] for key, run in confirmatory_plan.declared(config, p).items()}
        ),
    script:
        "../scripts/confirmatory_tests.py"


rule confirmatory_design:
    """How many confirmatory seeds: by simulation from the spread the exploratory grid recorded (run before the
    preregistration's seeds are fixed: `snakemake confirmatory_design`)."""
    input:
        expand(f"{TABLES}/{{protocol}}/runs.parquet", protocol=config["run_protocols"]),
    output:
        f"{CONFIRMATORY}/design.csv",
    log:
        "results/logs/confirmatory/design.log",
    conda:
        "../../environment.yml"
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        code=code("confirmatory_design.py"),
        preregistration=PREREGISTRATION,
        datasets=config["datasets"],
    script:
        "../scripts/confirmatory_design.py"


rule confirmatory_paper:
    """The paper's Confirmatory tests section and the abstract's confirmatory sentences."""
    input:
        tests=rules.confirmatory_tests.output.tests,
    output:
        section=f"{GENERATED_DIR}/confirmatory.tex",
        abstract=f"{GENERATED_DIR}/confirmatory_abstract.tex",
    log:
        "results/logs/confirmatory/paper.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        code=code("confirmatory_paper.py"),
        preregistration=PREREGISTRATION,
        cells={
            p: [dataset_label(d, config["data"][d].get("split", "official")) for d in config["datasets"]]
            for p in config["run_protocols"]
        },
        variants=variant_definitions(config),
        caption=BY_NAME["confirmatory"].caption,
    script:
        "../scripts/confirmatory_paper.py"


rule confirmatory:
    """Target: the confirmatory runs, their primary tests, the forest plot and the paper section."""
    input:
        rules.confirmatory_tests.output,
        figure_files(config["run_protocols"], section="confirmatory"),
        rules.confirmatory_paper.output,
