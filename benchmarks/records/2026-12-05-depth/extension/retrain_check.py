"""Retrain the first epochs of a committed depth run with this checkout's code and compare every metrics column but
the wall time with the record (run from the repository root):

    python benchmarks/records/2026-12-05-depth/extension/retrain_check.py T1 VARIANT SEED EPOCHS SHARD.epochs.csv...
"""

import copy
import sys

import pandas as pd

from htsep.config import read_config
from htsep.experiments.depth.plan import depth_run
from htsep.training.runs import train_run

config = read_config(["config/config.yaml", "config/offline.yaml"])
t1, variant, seed, epochs = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
run = copy.deepcopy(depth_run(config, "mnist", t1, variant, seed))
run["training"]["epochs"] = epochs
out = f"results/depth-retrain-check/T1{t1}-{variant}-seed{seed}"
train_run(run, {"train": "results/data/mnist/train.pt", "test": "results/data/mnist/test.pt"}, out)
new = pd.read_csv(f"{out}/metrics.csv")
rec = pd.concat(pd.read_csv(f) for f in sys.argv[5:])
own = (rec.free_steps == t1) & (rec.variant == variant) & (rec.seed == seed) & (rec.epoch <= epochs)
rec = rec[own].reset_index(drop=True)
cols = [c for c in new.columns if c != "seconds"]
assert len(rec) == epochs, len(rec)
diff = [c for c in cols if not (new[c].equals(rec[c]) or ((new[c] - rec[c]).abs().max() == 0))]
print(f"T1 {t1} {variant} seed {seed}: {epochs} epochs, {len(cols)} columns compared, differing: {diff or 'none'}")
