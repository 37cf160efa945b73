# Robustness (htsep.experiments.robustness): every trained grid and confirmatory EP model evaluated under perturbation
# (one job per model, reading the model.pt the train rule wrote), this invocation's evaluations as a shard, merged with
# the committed robustness shards into tables and paired contrasts, the figure (analysis.smk) and the paper section.
# `snakemake robustness` builds all of it.

from htsep.experiments.robustness import plan as robustness_plan
from htsep.study import evaluated_runs

ROBUSTNESS_RUNS = evaluated_runs(config)
ROBUSTNESS_HERE = evaluated_runs(config, this_invocation=True)
ROBUSTNESS_SETTING = robustness_plan.setting(config)


rule robustness_evaluate:
    """One trained model under every perturbation: its clean accuracy and one row per perturbation, level and draw."""
    input:
        model=f"{RUNS}/model.pt",
        test=f"{DATA}/{{dataset}}/test.pt",
    output:
        **robustness_plan.EVALUATION,
    log:
        f"results/logs/robustness/{RUN_LAYOUT}.log",
    benchmark:
        f"results/benchmarks/robustness/{RUN_LAYOUT}.tsv"
    conda:
        "../../environment.yml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        code=code("robustness_evaluate.py"),
        robustness=ROBUSTNESS_SETTING,
    script:
        "../scripts/robustness_evaluate.py"


rule robustness_shard:
    """This invocation's evaluations as a shard: one row per model, one per model and condition."""
    input:
        runs=robustness_plan.evaluation_files(config, ROBUSTNESS_HERE, "runs"),
        conditions=robustness_plan.evaluation_files(config, ROBUSTNESS_HERE, "conditions"),
    output:
        **robustness_plan.SHARD,
    log:
        "results/logs/robustness/shard.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        code=code("robustness_shard.py"),
    script:
        "../scripts/robustness_shard.py"


rule robustness_analysis:
    """The robustness tables and paired contrasts from the committed robustness shards and this invocation's, each
    declared model once."""
    input:
        unpack(
            lambda w: (
                {}
                if config["records"]["train"] == "none"
                else {f"shard_{name}": path for name, path in robustness_plan.SHARD.items()}
            )
        ),
        records_runs=committed(config, "robustness", "runs"),
        records_conditions=committed(config, "robustness", "conditions"),
    output:
        runs=f"{ROBUSTNESS}/runs.csv",
        conditions=f"{ROBUSTNESS}/conditions.csv",
        summary=f"{ROBUSTNESS}/summary.csv",
        effects=report(f"{ROBUSTNESS}/effects.csv", category="Robustness", caption="../report/robustness.rst"),
        provenance=f"{ROBUSTNESS}/provenance.csv",
    log:
        "results/logs/robustness/analysis.log",
    benchmark:
        "results/benchmarks/robustness/analysis.tsv"
    conda:
        "../../environment.yml"
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        code=code("robustness_analysis.py"),
        robustness=config["robustness"],
        contrasts=robustness_plan.contrasts(config, ROBUSTNESS_RUNS),
        declared=declared_runs(robustness_plan.declared(config, ROBUSTNESS_RUNS)),
    script:
        "../scripts/robustness_analysis.py"


rule robustness_paper:
    """The paper's robustness section."""
    input:
        runs=rules.robustness_analysis.output.runs,
        effects=rules.robustness_analysis.output.effects,
    output:
        f"{GENERATED_DIR}/robustness.tex",
    log:
        "results/logs/robustness/paper.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        code=code("robustness_paper.py"),
        robustness=config["robustness"],
        contrasts=list(config["preregistration"]["contrasts"]),
        caption=BY_NAME["robustness"].caption,
    script:
        "../scripts/robustness_paper.py"


rule robustness:
    """Target: the robustness tables, figure and paper section."""
    input:
        rules.robustness_analysis.output,
        figure_files(config["run_protocols"], section="robustness"),
        rules.robustness_paper.output,
