"""Seconds per epoch of one MNIST run (lab recipe, uniform_0.2, seed 0) with the checkout on PYTHONPATH.

    PYTHONPATH=<checkout>/src python epoch_seconds.py EPOCHS OUT_DIR     (run from the checkout's root)

Ran before the package restructure (at the commit its record names; the imports are updated to the
subpackage layout of 2026-12-04, nothing else).
"""
import sys

import pandas as pd

from htsep.config import data_slice, run_slice
from htsep.data.prepare import prepare_from_slice
from htsep.study import load_config
from htsep.training.runs import train_run

epochs, out = int(sys.argv[1]), sys.argv[2]
config = load_config(["config/config.yaml", "config/offline.yaml"])
paths = {k: str(v) for k, v in prepare_from_slice(data_slice(config, "mnist"), "results/data").items()}
run = run_slice(config, "mnist", "uniform_0.2", 0, "lab")
run["training"] |= {"epochs": epochs, "device": "cpu"}
train_run(run, paths, out)
print(pd.read_csv(f"{out}/metrics.csv")[["epoch", "seconds", "test_acc", "dead_frac_l1"]].to_string(index=False))
