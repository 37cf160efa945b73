# Mechanism experiments (htsep.experiments.mechanism): relaxation spectra of the grid's trained runs (spectra) and a
# dt mean x spread landscape of its own short runs (planned by plan, trained by htsep.training.sweeps, tabled by
# landscape), and the paper's Mechanism macros (paper); their figures are drawn by the figure rules (analysis.smk).
# `snakemake mechanism` builds all of it (and only the grid runs the spectra need).

from htsep.config import section_slice, variant_definitions
from htsep.experiments.mechanism import plan as mechanism_plan
from htsep.experiments.mechanism.plan import landscape_plan, spectral_runs
from htsep.records import committed, declared_runs
from htsep.paths import number

MECH = config["mechanism"]
MECH_ANALYSIS = section_slice(config, "analysis", ("collapse_drop", "alpha", "reference", "mean_matched"))
SPECTRAL_RUNS = spectral_runs(config)
LANDSCAPE_PLAN = {} if config["records"]["train"] == "none" else landscape_plan(config)  # what this invocation trains


rule mech_spectral:
    """Jacobian spectrum of the free relaxation at the state after T1 and after long_steps steps, for the grid's
    trained runs at each snapshot epoch and at the end, with their own and with swapped dt."""
    input:
        models=[
            f"{RUNS}/model.pt".format(protocol=MECH["spectral"]["protocol"], dataset=d, variant=v, seed=s)
            for d, v, s in SPECTRAL_RUNS
        ],
        test=[f"{DATA}/{d}/test.pt" for d in MECH["spectral"]["datasets"]],
    output:
        runs=mechanism_plan.SPECTRAL_SHARD["spectral_runs"],
        spectral=mechanism_plan.SPECTRAL_SHARD["spectral"],
        hist=mechanism_plan.SPECTRAL_SHARD["hist"],
    log:
        "results/logs/mechanism/spectral.log",
    benchmark:
        "results/benchmarks/mechanism/spectral.tsv"
    conda:
        "../../environment.yml"
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        code=code("mech_spectral.py"),
        spectral=MECH["spectral"],
    script:
        "../scripts/mech_spectral.py"


rule mech_spectral_tables:
    """The spectral tables of the committed mechanism shards and this invocation's, each declared run once."""
    input:
        unpack(lambda w: {f"local_{name}": path for name, path in spectral_shard().items()}),
        records_runs=committed(config, "mechanism", "spectral_runs"),
        records_spectral=committed(config, "mechanism", "spectral"),
        records_hist=committed(config, "mechanism", "hist"),
    output:
        table=f"{MECHANISM}/spectral.parquet",
        table_csv=report(f"{MECHANISM}/spectral.csv", category="Mechanism", caption="../report/mech_spectral.rst"),
        hist=f"{MECHANISM}/eigenvalue_hist.parquet",
        provenance=f"{MECHANISM}/spectral_provenance.csv",
    log:
        "results/logs/mechanism/spectral_tables.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        code=code("mech_spectral_tables.py"),
        declared=declared_runs(mechanism_plan.declared_spectra(config)),
    script:
        "../scripts/mech_spectral_tables.py"


rule mech_landscape_train:
    """All runs of one dt mean of the landscape (every spread x seed), stacked in one process."""
    input:
        train=f"{DATA}/{MECH['landscape']['dataset']}/train.pt",
        test=f"{DATA}/{MECH['landscape']['dataset']}/test.pt",
    output:
        [
            f"{LANDSCAPE}/{MECH['landscape']['dataset']}/mean{{mean}}_std{std}/seed{seed}/{name}"
            for std in map(number, MECH["landscape"]["stds"])
            for seed in MECH["landscape"]["seeds"]
            for name in RUN_FILES
        ],
    log:
        "results/logs/mechanism/landscape_train/mean{mean}.log",
    benchmark:
        "results/benchmarks/mechanism/landscape_train/mean{mean}.tsv"
    wildcard_constraints:
        mean=r"[0-9.e-]+",
    conda:
        "../../environment.yml"
    threads: config["training"].get("threads", 1)
    resources:
        mem_mb=3000,
        runtime=120,
    params:
        code=code("mech_train_sweep.py"),
        runs=lambda w: [run for _, run in LANDSCAPE_PLAN[w.mean]],
        folders=lambda w: [folder for folder, _ in LANDSCAPE_PLAN[w.mean]],
    script:
        "../scripts/mech_train_sweep.py"


rule mech_landscape_shard:
    """This invocation's landscape runs as a shard: one row per run, how it broke."""
    input:
        summaries=[f"{folder}/summary.json" for jobs in LANDSCAPE_PLAN.values() for folder, _ in jobs],
        metrics=[f"{folder}/metrics.csv" for jobs in LANDSCAPE_PLAN.values() for folder, _ in jobs],
    output:
        mechanism_plan.LANDSCAPE_SHARD["landscape"],
    log:
        "results/logs/mechanism/landscape_shard.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        code=code("mech_landscape_shard.py"),
        analysis=MECH_ANALYSIS,
        chance_acc=MECH["chance_acc"],
    script:
        "../scripts/mech_landscape_shard.py"


rule mech_landscape:
    """Landscape tables from the committed landscape shards and this invocation's: per run, and per dt mean x
    spread with break rates."""
    input:
        records=committed(config, "mechanism", "landscape"),
        shard=[] if config["records"]["train"] == "none" else rules.mech_landscape_shard.output,
    output:
        provenance=f"{MECHANISM}/landscape_provenance.csv",
        runs=f"{MECHANISM}/landscape_runs.parquet",
        runs_csv=f"{MECHANISM}/landscape_runs.csv",
        table=report(f"{MECHANISM}/landscape.csv", category="Mechanism", caption="../report/mech_landscape_table.rst"),
    log:
        "results/logs/mechanism/landscape.log",
    benchmark:
        "results/benchmarks/mechanism/landscape.tsv"
    conda:
        "../../environment.yml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        code=code("mech_landscape.py"),
        analysis=MECH_ANALYSIS,
        declared=declared_runs(mechanism_plan.declared_landscape(config)),
    script:
        "../scripts/mech_landscape.py"


rule mechanism_paper:
    """Numbers and data-worded claims of the paper's Mechanism section (paper/mechanism.tex)."""
    input:
        spectral=rules.mech_spectral_tables.output.table,
        epochs=expand(f"{TABLES}/{{protocol}}/epochs.parquet", protocol=config["run_protocols"]),
        landscape=rules.mech_landscape.output.table,
    output:
        f"{GENERATED_DIR}/mechanism.tex",
    log:
        "results/logs/mechanism/paper.log",
    benchmark:
        "results/benchmarks/mechanism/paper.tsv"
    conda:
        "../../environment.yml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        code=code("mech_paper.py"),
        spectral=MECH["spectral"],
        landscape=MECH["landscape"],
        variants=variant_definitions(config),
        run_protocols=config["run_protocols"],
        analysis=MECH_ANALYSIS,
    script:
        "../scripts/mech_paper.py"


rule mechanism:
    """Every mechanism output: tables, figures and the paper macros."""
    input:
        rules.mech_spectral_tables.output,
        rules.mech_landscape.output,
        figure_files(config["run_protocols"], mechanism=True),
        rules.mechanism_paper.output,
