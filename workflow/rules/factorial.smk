# The dt mean x spread factorial (htsep.experiments.factorial): its runs (trained by the train rule, the grid's layout;
# cells shared with the grid are the grid's runs) as a shard, merged with the committed grid and factorial shards, the
# mixed-model effects and the failures, the figure (analysis.smk) and the paper section. `snakemake factorial`.

from htsep.experiments.factorial import plan as factorial_plan

FACTORIAL_FOLDERS = factorial_plan.trained_here(config)


rule factorial_shard:
    """This invocation's factorial runs as a shard: one row per run, one per run and epoch."""
    input:
        summaries=[f"{folder}/summary.json" for folder in FACTORIAL_FOLDERS],
        metrics=[f"{folder}/metrics.csv" for folder in FACTORIAL_FOLDERS],
    output:
        **factorial_plan.SHARD,
    log:
        "results/logs/factorial/shard.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        code=code("run_shard.py"),
    script:
        "../scripts/run_shard.py"


rule factorial_analysis:
    """The factorial's runs, effects and failures from the committed grid and factorial shards and this
    invocation's, each declared run once."""
    input:
        unpack(
            lambda w: (
                {}
                if config["records"]["train"] == "none"
                else {f"shard_{name}": path for name, path in factorial_plan.SHARD.items()}
            )
        ),
        records_runs=committed(config, factorial_plan.EXPERIMENTS, "runs"),
        records_epochs=committed(config, factorial_plan.EXPERIMENTS, "epochs"),
    output:
        runs=f"{FACTORIAL}/runs.csv",
        effects=report(f"{FACTORIAL}/effects.csv", category="Factorial", caption="../report/factorial.rst"),
        failures=f"{FACTORIAL}/failures.csv",
        failure_model=f"{FACTORIAL}/failure_model.csv",
        provenance=f"{FACTORIAL}/provenance.csv",
    log:
        "results/logs/factorial/analysis.log",
    benchmark:
        "results/benchmarks/factorial/analysis.tsv"
    conda:
        "../../environment.yml"
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        code=code("factorial_analysis.py"),
        factorial=config["factorial"],
        cells=factorial_plan.cells(config),
        declared=declared_runs(factorial_plan.declared(config)),
    script:
        "../scripts/factorial_analysis.py"


rule factorial_paper:
    """The paper's factorial section."""
    input:
        runs=rules.factorial_analysis.output.runs,
        effects=rules.factorial_analysis.output.effects,
        failures=rules.factorial_analysis.output.failures,
    output:
        f"{GENERATED_DIR}/factorial.tex",
    log:
        "results/logs/factorial/paper.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        code=code("factorial_paper.py"),
        factorial=config["factorial"],
        caption=BY_NAME["factorial"].caption,
    script:
        "../scripts/factorial_paper.py"


rule factorial:
    """Target: the factorial's runs, effects, figure and paper section."""
    input:
        rules.factorial_analysis.output,
        figure_files(config["run_protocols"], section="factorial"),
        rules.factorial_paper.output,
