"""Collect the grid's per-run files into tidy pandas tables (one row per run, or per run and epoch).

Runs are keyed by protocol, dataset, variant and seed; the backprop reference's rows have protocol and variant
``backprop`` (htsep.training.backprop) and no dt.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from ...files import read_json, read_run, read_torch, write_table

RUN_KEYS = ["protocol", "dataset", "dataset_label", "split", "variant", "seed"]
ORDER = ["protocol", "dataset", "variant", "seed"]
LAB_ERA = "lab"  # the protocol of summaries written before protocols existed (e.g. benchmarks/records/2026-11-27-h200)
RUN_COLUMNS = RUN_KEYS + ["final_test_acc", "final_train_acc", "best_test_acc", "best_epoch", "diverged",
                          "diverged_epoch", "epochs_completed", "wall_seconds", "device"]


def run_tables(summary_paths: Iterable[str | Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, epochs) from run folders holding summary.json and metrics.csv."""
    runs, epochs = [], []
    for path in map(Path, summary_paths):
        summary, metrics = read_run(path)
        summary = {"protocol": LAB_ERA, **summary}
        row = {k: summary[k] for k in RUN_COLUMNS}
        for stats in summary["dt_stats"]:
            row |= {f"dt_{stat}_l{stats['layer']}": stats[stat] for stat in ("mean", "std", "min", "max")}
        runs.append(row)
        epochs.append(metrics.assign(**{k: summary[k] for k in RUN_KEYS}))
    runs = pd.DataFrame(runs).sort_values(ORDER, ignore_index=True)
    runs = runs.astype({"best_epoch": "Int64", "diverged_epoch": "Int64"})  # missing when no finite epoch / none
    epochs = pd.concat(epochs, ignore_index=True)
    epochs = epochs[RUN_KEYS + [c for c in epochs.columns if c not in RUN_KEYS]]
    epochs = epochs.sort_values([*ORDER, "epoch"], ignore_index=True)
    return runs, epochs


def dt_table(summary_paths: Iterable[str | Path]) -> pd.DataFrame:
    """Every neuron's dt, from the model.pt beside each summary.json."""
    dts = []
    for path in map(Path, summary_paths):
        keys = {k: read_json(path, "run summary")[k] for k in RUN_KEYS}
        state = read_torch(path.parent / "model.pt", "trained model", map_location="cpu")
        for layer, dt in enumerate(state["network"]["dt"], start=1):
            dts.append(pd.DataFrame({**keys, "layer": layer, "neuron": range(len(dt)), "dt": dt.double().numpy()}))
    return pd.concat(dts, ignore_index=True)


def collect(summary_paths: Iterable[str | Path], backprop_paths: Iterable[str | Path] = ()
            ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(runs, epochs, dt_values) from EP run folders holding summary.json, metrics.csv and model.pt, and backprop
    reference folders (summary.json, metrics.csv: rows in runs and epochs, none in dt_values)."""
    summary_paths = list(summary_paths)
    return *run_tables([*summary_paths, *backprop_paths]), dt_table(summary_paths)


def aggregate_runs(summary_paths: Iterable[str | Path], backprop_paths: Iterable[str | Path],
                   outputs: Mapping[str, str]) -> None:
    """Write runs/epochs tables (CSV and parquet) and dt values (parquet) to the paths in ``outputs``."""
    runs, epochs, dt = collect(summary_paths, backprop_paths)
    write_table(outputs["runs_csv"], runs)
    write_table(outputs["runs"], runs)
    write_table(outputs["epochs_csv"], epochs)
    write_table(outputs["epochs"], epochs)
    write_table(outputs["dt"], dt)
