"""The calibration behind the ``calibrated`` protocol and the backprop setting, on validation data only.

Every point of the declared search (config key calibration.search, and backprop_search for the reference) trains
the reference uniform variant on the calibration dataset's training set minus its validation split, for the
study's full epochs, with several seeds, and is scored on its final validation accuracy (0 for a run that
diverged). The selection rule is
fixed in config before the search runs (``highest_mean_validation_accuracy``: the highest mean over seeds; ties
within 1e-9 go to the earlier, simpler point of the search order). The test set takes no part.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from ...files import read_run, write_json, write_table
from .plan import CALIBRATED, search_points

TIE = 1e-9


def end_measures(metrics: pd.DataFrame) -> dict:
    """Never-predicted classes and dead-unit shares (htsep.ep.dynamics.dead_units) at the end of training."""
    last = metrics.iloc[-1]
    return {c: last[c] for c in metrics.columns if c == "classes_never_predicted" or "dead" in c}


def calibration_table(summary_paths: Iterable[str | Path], config: Mapping) -> pd.DataFrame:
    """One row per search run: kind, point, its values, seed, final validation accuracy and end-of-training
    dead-unit measures (the runs' "test" split is the validation split)."""
    order = {kind: list(search_points(config, kind)) for kind in CALIBRATED}
    rows = []
    for path in map(Path, summary_paths):
        summary, metrics = read_run(path)
        kind, point = (summary["config"]["sweep"][key] for key in ("kind", "point"))
        values = {k: json.dumps(v) if isinstance(v, list) else v for k, v in search_points(config, kind)[point].items()}
        rows.append({"kind": kind, "point": point, "order": order[kind].index(point), "seed": summary["seed"],
                     **values, "val_acc": summary["final_test_acc"], "diverged": summary["diverged"],
                     **end_measures(metrics)})
    return pd.DataFrame(rows).sort_values(["kind", "order", "seed"], ignore_index=True)


def select(table: pd.DataFrame, config: Mapping) -> dict:
    """The selected point of each kind by the declared rule, with the per-point means it was chosen from."""
    rule = config["calibration"]["selection"]
    chosen = {"rule": rule, "dataset": config["calibration"]["dataset"], "variant": config["calibration"]["variant"],
              "seeds": config["calibration"]["seeds"]}
    for kind, group in table.groupby("kind"):
        scores = group.assign(val_acc=group["val_acc"].fillna(0.0))  # a diverged run scores 0
        means = scores.groupby(["order", "point"])["val_acc"].mean().reset_index()
        best = means["val_acc"].max()
        winner = means[means["val_acc"] >= best - TIE].sort_values("order").iloc[0]
        chosen[kind] = {"point": winner["point"], "values": search_points(config, kind)[winner["point"]],
                        "mean_val_acc": float(winner["val_acc"]),
                        "means": dict(zip(means["point"], means["val_acc"].astype(float), strict=True))}
    return chosen


def write_calibration(summary_paths: Iterable[str | Path], outputs: Mapping[str, str], config: Mapping) -> None:
    """The search table (CSV) and the selection (JSON); its figure is drawn from the table (htsep.report.figures)."""
    table = calibration_table(summary_paths, config)
    write_table(outputs["table"], table)
    write_json(outputs["selection"], select(table, config))
