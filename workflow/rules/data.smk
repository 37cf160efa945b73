rule prepare_data:
    """Get one dataset (download or mirror), verify its MD5s and cache train/test tensors."""
    output:
        train=f"{DATA}/{{dataset}}/train.pt",
        test=f"{DATA}/{{dataset}}/test.pt",
    log:
        "results/logs/prepare_data/{dataset}.log",
    benchmark:
        "results/benchmarks/prepare_data/{dataset}.tsv"
    conda:
        "../../environment.yml"
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        code=code("prepare_data.py"),
        dataset=lambda w: data_slice(config, w.dataset),
    script:
        "../scripts/prepare_data.py"


rule validation_split:
    """Set a stratified, seeded part of each class aside from the training set: calibration fits on the rest and
    scores on it, so the test set never takes part in a choice (the study grid trains on the whole set)."""
    input:
        train=rules.prepare_data.output.train,
    output:
        fit=f"{DATA}/{{dataset}}/fit.pt",
        validation=f"{DATA}/{{dataset}}/validation.pt",
    log:
        "results/logs/validation_split/{dataset}.log",
    benchmark:
        "results/benchmarks/validation_split/{dataset}.tsv"
    conda:
        "../../environment.yml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        code=code("validation_split.py"),
        validation=lambda w: validation_slice(config, w.dataset),
    script:
        "../scripts/validation_split.py"
