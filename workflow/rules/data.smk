rule prepare_data:
    """Get one dataset (download or mirror), verify its MD5s and cache train/test tensors."""
    output:
        train=f"{DATA}/{{dataset}}/train.pt",
        test=f"{DATA}/{{dataset}}/test.pt",
    params:
        code=code("prepare_data.py"),
        dataset=lambda w: data_slice(config, w.dataset),
    log:
        "results/logs/prepare_data/{dataset}.log",
    benchmark:
        "results/benchmarks/prepare_data/{dataset}.tsv"
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../../environment.yml"
    script:
        "../scripts/prepare_data.py"
