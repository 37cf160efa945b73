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
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from ...files import read_run, write_json, write_table
from ...records import RecordError, config_json, merge, read_shard, write_provenance
from .plan import CALIBRATED, KEYS, search_points

TIE = 1e-9


def end_measures(metrics: pd.DataFrame) -> dict:
    """Never-predicted classes and dead-unit shares (htsep.ep.dynamics.dead_units) at the end of training."""
    last = metrics.iloc[-1]
    return {c: last[c] for c in metrics.columns if c == "classes_never_predicted" or "dead" in c}


def search_runs(summary_paths: Iterable[str | Path]) -> pd.DataFrame:
    """One row per search run (a shard): kind, point, seed, final validation accuracy, end-of-training dead-unit
    measures (the runs' "test" split is the validation split), and its run config, code and kernel."""
    rows = []
    for path in map(Path, summary_paths):
        summary, metrics = read_run(path)
        rows.append({**{key: summary["config"]["sweep"][key] for key in ("kind", "point")}, "seed": summary["seed"],
                     "val_acc": summary["final_test_acc"], "diverged": summary["diverged"], **end_measures(metrics),
                     "config": config_json(summary["config"]), "code_fingerprint": summary.get("code_fingerprint"),
                     "relaxation_kernel": summary.get("relaxation_kernel")})
    return pd.DataFrame(rows, columns=None if rows else [*KEYS, "val_acc", "diverged", "config", "code_fingerprint",
                                                         "relaxation_kernel"])


def calibration_table(runs: pd.DataFrame, config: Mapping) -> pd.DataFrame:
    """The search table: each run's point values and its place in the declared search order."""
    order = {kind: search_points(config, kind) for kind in CALIBRATED}
    values = pd.DataFrame([{"kind": kind, "point": point, "order": i,
                            **{k: json.dumps(v) if isinstance(v, list) else v for k, v in point_values.items()}}
                           for kind in CALIBRATED for i, (point, point_values) in enumerate(order[kind].items())])
    table = runs.drop(columns=["record"], errors="ignore").merge(values, on=["kind", "point"])
    first = ["kind", "point", "order", "seed", *[c for c in values.columns if c not in ("kind", "point", "order")]]
    return table[first + [c for c in table.columns if c not in first]].sort_values(
        ["kind", "order", "seed"], ignore_index=True)


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


def write_shard(summary_paths: Iterable[str | Path], output: str | Path) -> None:
    """This invocation's search runs as a shard (commit it under benchmarks/records/<date>-calibration/shards/)."""
    write_table(output, search_runs(summary_paths))


def write_calibration(records: Sequence[str], shard: str | Path, outputs: Mapping[str, str], config: Mapping,
                      declared: Sequence[Sequence]) -> None:
    """The search table (CSV) and the selection (JSON) from the committed search shards and this invocation's,
    each declared run once (htsep.records), and where the runs came from; its figure is drawn from the table."""
    runs = merge(records, read_shard(shard, KEYS, local=True), KEYS, declared, "calibration")
    if not len(runs):
        raise RecordError("calibration: no search run recorded or trained for the declared search")
    write_provenance(outputs["provenance"], {"runs": runs}, "calibration")
    table = calibration_table(runs, config)
    write_table(outputs["table"], table)
    write_json(outputs["selection"], select(table, config))
