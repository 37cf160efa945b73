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
        run=lambda w: run_slice(config, w.dataset, w.variant, int(w.seed)),
    log:
        f"results/logs/train/{{dataset}}/{{variant}}/seed{{seed}}.log",
    benchmark:
        f"results/benchmarks/train/{{dataset}}/{{variant}}/seed{{seed}}.tsv"
    threads: config["training"].get("threads", 1)
    resources:
        mem_mb=config.get("execution", {}).get("train_mem_mb", 3000),
        runtime=config.get("execution", {}).get("train_runtime", 120),
        gpu=1 if config.get("execution", {}).get("gpu", False) else 0,
    group:
        "train"
    conda:
        "../../environment.yml"
    script:
        "../scripts/train.py"
