"""Hyperparameter searches on validation data, shared by the experiments that select a protocol (calibration, depth):
the points of a search (the full product of its value lists, in declared order) and their names, the table of the
search runs, and the declared rule's selection (``highest_mean_validation_accuracy``: the highest mean final validation
accuracy over seeds, a diverged run scoring 0; ties within ``TIE`` go to the earlier, simpler point)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import product
from pathlib import Path

import pandas as pd

from .config import BACKPROP
from .files import read_run
from .paths import number
from .records import config_json

SEARCH_KEYS = ["dataset", "variant", "point", "seed"]  # a run of a search
TIE = 1e-9


def product_points(values: Mapping[str, list]) -> dict[str, dict]:
    """Point name -> values of the search ``values`` (key -> candidate list), their product in declared order."""
    points = (dict(zip(values, combination, strict=True)) for combination in product(*values.values()))
    return {point_name(p): p for p in points}


def point_name(point: Mapping) -> str:
    """A path-safe name of a search point, e.g. 'beta0.5_momentum0_lr0.1-0.05'."""
    def text(value):
        if isinstance(value, list | tuple):
            return "-".join(text(v) for v in value)
        return number(value) if isinstance(value, float) else str(value)
    return "_".join(f"{key}{text(value)}" for key, value in point.items())


def end_measures(metrics: pd.DataFrame) -> dict:
    """Never-predicted classes and dead-unit shares (htsep.ep.dynamics.dead_units) at the end of training."""
    last = metrics.iloc[-1]
    return {c: last[c] for c in metrics.columns if c == "classes_never_predicted" or "dead" in c}


def search_runs(summary_paths: Iterable[str | Path]) -> pd.DataFrame:
    """One row per search run (a shard): dataset, variant (``backprop`` for the reference), point, seed, kind, final
    validation accuracy, end-of-training dead-unit measures (the runs' "test" split is the validation split), and
    its run config, code and kernel."""
    rows = []
    for path in map(Path, summary_paths):
        summary, metrics = read_run(path)
        run = summary["config"]
        rows.append({"dataset": run["dataset"]["name"], "variant": run.get("variant", {}).get("name", BACKPROP),
                     "point": run["sweep"]["point"], "seed": summary["seed"], "kind": run["sweep"]["kind"],
                     "val_acc": summary["final_test_acc"], "diverged": summary["diverged"], **end_measures(metrics),
                     "config": config_json(run), "code_fingerprint": summary.get("code_fingerprint"),
                     "relaxation_kernel": summary.get("relaxation_kernel")})
    return pd.DataFrame(rows, columns=None if rows else [*SEARCH_KEYS, "kind", "val_acc", "diverged", "config",
                                                         "code_fingerprint", "relaxation_kernel"])


def winner(group: pd.DataFrame, points: Mapping[str, dict]) -> dict:
    """The point of one search the declared rule selects, with the per-point means it was chosen from."""
    scores = group.assign(val_acc=group["val_acc"].fillna(0.0))  # a diverged run scores 0
    means = scores.groupby(["order", "point"])["val_acc"].mean().reset_index()
    best = means[means["val_acc"] >= means["val_acc"].max() - TIE].sort_values("order").iloc[0]
    return {"point": best["point"], "values": points[best["point"]], "mean_val_acc": float(best["val_acc"]),
            "means": dict(zip(means["point"], means["val_acc"].astype(float), strict=True))}
