"""The timed grid's jobs from a finished workdir: one row per train job (wall seconds from snakemake's benchmark
file) and per run (training seconds and final accuracy from its summary.json).

    python jobs.py <workdir> <jobs.csv> <runs.csv>
"""

import json
import sys
from pathlib import Path

import pandas as pd

workdir, jobs_out, runs_out = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
jobs = [{"job": f.relative_to(workdir / "results/benchmarks").with_suffix("").as_posix(),
         "wall_s": float(pd.read_csv(f, sep="\t")["s"].iloc[0])}
        for f in sorted((workdir / "results/benchmarks").glob("train*/**/*.tsv"))]
runs = []
for f in sorted((workdir / "results/runs/calibrated").glob("*/*/*/summary.json")):
    s = json.loads(f.read_text())
    runs.append({"dataset": s["dataset"], "variant": s["variant"], "seed": s["seed"],
                 "training_s": round(s["wall_seconds"], 2), "final_test_acc": s["final_test_acc"],
                 "relaxation_kernel": s["relaxation_kernel"], "code_fingerprint": s["code_fingerprint"]})
pd.DataFrame(jobs).to_csv(jobs_out, index=False)
pd.DataFrame(runs).to_csv(runs_out, index=False)
print(f"{len(jobs)} jobs, {len(runs)} runs")
