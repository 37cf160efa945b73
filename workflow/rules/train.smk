EXECUTION = config.get("execution", {})
TRAIN_RESOURCES = dict(
    mem_mb=EXECUTION.get("train_mem_mb", 3000),
    runtime=lambda wildcards, attempt: EXECUTION.get("train_runtime", 120) * attempt,  # minutes; more on a retry
    gpu=1 if EXECUTION.get("gpu", False) else 0,
)


if not EXECUTION.get("batch_runs", False):

    rule train:
        """Train one (protocol, dataset, dt variant, seed) run; its effective config is its params (rerun trigger)."""
        input:
            train=rules.prepare_data.output.train,
            test=rules.prepare_data.output.test,
        output:
            metrics=f"{RUNS}/metrics.csv",
            summary=f"{RUNS}/summary.json",
            model=f"{RUNS}/model.pt",
        log:
            "results/logs/train/{protocol}/{dataset}/{variant}/seed{seed}.log",
        benchmark:
            "results/benchmarks/train/{protocol}/{dataset}/{variant}/seed{seed}.tsv"
        group:
            "train"
        conda:
            "../../environment.yml"
        threads: config["training"].get("threads", 1)
        resources:
            **TRAIN_RESOURCES,
        params:
            code=code("train.py"),
            run=lambda w: run_slice(
                config, w.dataset, w.variant, int(w.seed), w.protocol, training=checked_training(w.protocol)
            ),
        script:
            "../scripts/train.py"

else:
    # Batched training: each job trains `runs_per_job` runs of one dataset, as one network with a leading run axis
    # (stack_runs, GPU-friendly) or one after another (the CPU's fastest), one folder per run. Changing one run's
    # config reruns its whole job.
    for (protocol, dataset), members in stacked_members(config).items():
        size = EXECUTION.get("runs_per_job", 50)
        for index, start in enumerate(range(0, len(members), size)):
            chunk = members[start : start + size]
            folders = [RUNS.format(protocol=protocol, dataset=dataset, variant=v, seed=s) for v, s in chunk]

            rule:
                name:
                    f"train_batch_{protocol}_{dataset}_{index}"
                input:
                    train=f"{DATA}/{dataset}/train.pt",
                    test=f"{DATA}/{dataset}/test.pt",
                output:
                    [f"{folder}/{name}" for folder in folders for name in RUN_FILES],
                log:
                    f"results/logs/train_batch/{protocol}_{dataset}_{index}.log",
                benchmark:
                    f"results/benchmarks/train_batch/{protocol}_{dataset}_{index}.tsv"
                conda:
                    "../../environment.yml"
                threads: config["training"].get("threads", 1)
                resources:
                    **TRAIN_RESOURCES,
                params:
                    code=code("train_batch.py"),
                    runs=[
                        run_slice(config, dataset, v, s, protocol, training=checked_training(protocol))
                        for v, s in chunk
                    ],
                    folders=folders,
                    stack=EXECUTION.get("stack_runs", True),
                script:
                    "../scripts/train_batch.py"


rule train_backprop:
    """The backprop reference of one (dataset, seed): same network, init, data, epochs and batch as EP, its own
    loss and optimiser (config key backprop, selected on the validation split); independent of the EP protocol."""
    input:
        train=rules.prepare_data.output.train,
        test=rules.prepare_data.output.test,
    output:
        metrics=f"{BACKPROP_RUNS}/metrics.csv",
        summary=f"{BACKPROP_RUNS}/summary.json",
        model=f"{BACKPROP_RUNS}/model.pt",
    log:
        "results/logs/train/backprop/{dataset}/seed{seed}.log",
    benchmark:
        "results/benchmarks/train/backprop/{dataset}/seed{seed}.tsv"
    group:
        "train"
    conda:
        "../../environment.yml"
    threads: config["training"].get("threads", 1)
    resources:
        **TRAIN_RESOURCES,
    params:
        code=code("train_backprop.py"),
        run=lambda w: backprop_slice(config, w.dataset, int(w.seed)),
    script:
        "../scripts/train_backprop.py"
