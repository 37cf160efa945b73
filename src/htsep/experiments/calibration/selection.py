"""The calibration behind the searched protocols and the backprop setting, on validation data only.

Every point of the declared EP search (config key calibration.search) trains each searched protocol's reference
variant (calibration.protocols) on the calibration dataset's training set minus its validation split; every point of
the backprop search trains the reference on each dataset's; all for the study's full epochs, with several seeds,
scored on the final validation accuracy (0 for a run that diverged). The selection rule is fixed in config before
the search runs (``highest_mean_validation_accuracy``: the highest mean over seeds; ties within 1e-9 go to the
earlier, simpler point of the search order). The test set takes no part.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from ...config import BACKPROP
from ...files import write_json, write_table
from ...records import RecordError, merge, read_shard, write_provenance
from ...searches import search_runs, winner
from .plan import KEYS, search_points


def calibration_table(runs: pd.DataFrame, config: Mapping) -> pd.DataFrame:
    """The search table: each run's point values and its place in the declared search order."""
    values = pd.DataFrame([{"kind": kind, "point": point, "order": i,
                            **{k: json.dumps(v) if isinstance(v, list) else v for k, v in point_values.items()}}
                           for kind in ("ep", "backprop")
                           for i, (point, point_values) in enumerate(search_points(config, kind).items())])
    table = runs.drop(columns=["record"], errors="ignore").merge(values, on=["kind", "point"])
    first = ["kind", "dataset", "variant", "point", "order", "seed",
             *[c for c in values.columns if c not in ("kind", "point", "order")]]
    return table[first + [c for c in table.columns if c not in first]].sort_values(
        ["kind", "dataset", "variant", "order", "seed"], ignore_index=True)


def select(table: pd.DataFrame, config: Mapping) -> dict:
    """The selection of every searched protocol (from its reference variant's search on the calibration dataset)
    and of the backprop reference on every searched dataset, by the declared rule."""
    calibration = config["calibration"]
    chosen = {"rule": calibration["selection"], "seeds": calibration["seeds"], "protocols": {}, "backprop": {}}
    ep = table[(table["kind"] == "ep") & (table["dataset"] == calibration["dataset"])]
    for protocol, variant in calibration["protocols"].items():
        group = ep[ep["variant"] == variant]
        if len(group):
            chosen["protocols"][protocol] = {"dataset": calibration["dataset"], "variant": variant,
                                             **winner(group, search_points(config, "ep"))}
    for dataset, group in table[table["kind"] == "backprop"].groupby("dataset"):
        chosen["backprop"][dataset] = {"dataset": dataset, "variant": BACKPROP,
                                       **winner(group, search_points(config, "backprop"))}
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
