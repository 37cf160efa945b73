"""Retrain committed frontier runs with a checkout's engine (one stack of 3 variants x SEEDS) and compare their
outcome rows with the committed shard tables (run from the checkout's root; writes /tmp/fv):

    PYTHONPATH=<checkout>/src python verify_frontier_runs.py fashion_mnist 6.5 10,11

Ran before the package restructure (at the commit its record names; the imports are updated to the
subpackage layout of 2026-12-04, nothing else).
"""
import glob
import sys
import time

import pandas as pd

from htsep.config import data_slice
from htsep.data.prepare import prepare_from_slice
from htsep.experiments.frontier.plan import frontier_run
from htsep.outcomes import run_outcomes
from htsep.study import load_config
from htsep.training.runs import train_runs

dataset, level, seeds = sys.argv[1], float(sys.argv[2]), [int(s) for s in sys.argv[3].split(",")]
cfg = load_config(["config/config.yaml", "config/offline.yaml"])
paths = {k: str(v) for k, v in prepare_from_slice(data_slice(cfg, dataset), "/tmp/data").items()}
variants = cfg["frontier"]["variants"]
runs = [frontier_run(cfg, dataset, "lr", level, v, s, "sweep") for v in variants for s in seeds]
folders = [f"/tmp/fv/{dataset}/{level}/{r['variant']['name']}/seed{r['seed']}" for r in runs]
t = time.perf_counter()
train_runs(runs, paths, folders, keep_model=False)
print(f"trained {len(runs)} runs in {time.perf_counter() - t:.0f} s")
new = run_outcomes([f + "/summary.json" for f in folders], cfg["frontier"]["failure"])
old = pd.concat(pd.read_csv(p) for p in glob.glob(f"benchmarks/records/*-frontier/shards/{dataset}-lr*.csv"))
old = old[(old.level == level) & old.seed.isin(seeds)]
keys = ["variant", "seed"]
cols = ["final_test_acc", "best_test_acc", "diverged", "max_drop", "classes_never_predicted", "broke", "failure_kind",
        "failure_epoch", "free_residual", "relax_steps_to_tol", "relax_unconverged_frac", "relax_oscillation",
        "out_dead_analytic_frac"]
m = old.merge(new, on=keys, suffixes=("_old", "_new"))
print(len(m), "runs compared; fingerprints", set(m.code_fingerprint_old), "->", set(m.code_fingerprint_new))
for c in cols:
    a, b = m[c + "_old"], m[c + "_new"]
    same = (a == b) | (a.isna() & b.isna())
    print(f"{c:>24}: {int(same.sum())}/{len(m)} identical")
print(m[keys + ["final_test_acc_old", "final_test_acc_new", "broke_old", "broke_new"]].to_string())
