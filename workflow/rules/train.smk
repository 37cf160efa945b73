EXECUTION = config.get("execution", {})
TRAIN_RESOURCES = dict(
    mem_mb=EXECUTION.get("train_mem_mb", 3000),
    runtime=lambda wildcards, attempt: EXECUTION.get("train_runtime", 120) * attempt,  # minutes; more on a retry
    gpu=1 if EXECUTION.get("gpu", False) else 0,
)


if not EXECUTION.get("batch_runs", False):

    rule train:
        """Train one (dataset, dt variant, seed) run; the run's effective config is its params (rerun trigger)."""
        input:
            train=rules.prepare_data.output.train,
            test=rules.prepare_data.output.test,
        output:
            metrics=f"{RUNS}/metrics.csv",
            summary=f"{RUNS}/summary.json",
            model=f"{RUNS}/model.pt",
        params:
            code=code("train.py"),
            run=lambda w: run_slice(config, w.dataset, w.variant, int(w.seed)),
        log:
            f"results/logs/train/{{dataset}}/{{variant}}/seed{{seed}}.log",
        benchmark:
            f"results/benchmarks/train/{{dataset}}/{{variant}}/seed{{seed}}.tsv"
        threads: config["training"].get("threads", 1)
        resources:
            **TRAIN_RESOURCES,
        group:
            "train"
        conda:
            "../../environment.yml"
        script:
            "../scripts/train.py"

else:
    # Stacked training: each job trains `runs_per_job` runs of one dataset as one network with a leading run
    # axis, still writing one folder per run. Changing one run's config reruns its whole job.
    for dataset in config["datasets"]:
        members = [(v, s) for v in VARIANTS for s in config["seeds"]]
        size = EXECUTION.get("runs_per_job", 50)
        for index, start in enumerate(range(0, len(members), size)):
            chunk = members[start : start + size]
            folders = [RUNS.format(dataset=dataset, variant=v, seed=s) for v, s in chunk]

            rule:
                name:
                    f"train_batch_{dataset}_{index}"
                input:
                    train=f"{DATA}/{dataset}/train.pt",
                    test=f"{DATA}/{dataset}/test.pt",
                output:
                    [f"{folder}/{name}" for folder in folders for name in RUN_FILES],
                params:
                    code=code("train_batch.py"),
                    runs=[run_slice(config, dataset, v, s) for v, s in chunk],
                    folders=folders,
                log:
                    f"results/logs/train_batch/{dataset}_{index}.log",
                benchmark:
                    f"results/benchmarks/train_batch/{dataset}_{index}.tsv"
                threads: config["training"].get("threads", 1)
                resources:
                    **TRAIN_RESOURCES,
                conda:
                    "../../environment.yml"
                script:
                    "../scripts/train_batch.py"
