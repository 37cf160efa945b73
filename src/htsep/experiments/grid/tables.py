"""The grid's tables, per protocol: this invocation's runs as a shard (``write_shard``: one row per run, one per run and
epoch), and the shards committed under records.root merged with it (``aggregate``: runs, epochs and every neuron's
dt), each run once, only runs the config declares with the run config it declares (htsep.records).

Runs are keyed by protocol, dataset, variant and seed; the backprop reference's rows have protocol and variant
``backprop`` (htsep.training.backprop) and no dt.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from ...ep.timesteps import resolve_dt
from ...files import read_run, write_table
from ...records import RECORD_COLUMNS, config_json, merge_experiment, write_provenance
from .plan import KEYS

LABELS = ["dataset_label", "split"]
LAB_ERA = "lab"  # the protocol of summaries written before protocols existed (e.g. benchmarks/records/2026-11-27-h200)
RUN_COLUMNS = [*KEYS, *LABELS, "final_test_acc", "final_train_acc", "best_test_acc", "best_epoch", "diverged",
               "diverged_epoch", "epochs_completed", "wall_seconds", "device"]


def run_tables(summary_paths: Iterable[str | Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, epochs) from run folders holding summary.json and metrics.csv; runs carry their run config, code
    fingerprint and kernel build (a shard's record columns)."""
    runs, epochs = [], []
    for path in map(Path, summary_paths):
        summary, metrics = read_run(path)
        summary = {"protocol": LAB_ERA, **summary}
        row = {k: summary[k] for k in RUN_COLUMNS}
        for stats in summary["dt_stats"]:
            row |= {f"dt_{stat}_l{stats['layer']}": stats[stat] for stat in ("mean", "std", "min", "max")}
        row |= {"config": config_json(summary["config"]), "code_fingerprint": summary.get("code_fingerprint"),
                "relaxation_kernel": summary.get("relaxation_kernel")}
        runs.append(row)
        epochs.append(metrics.assign(**{k: summary[k] for k in [*KEYS, *LABELS]}))
    if not runs:
        return pd.DataFrame(columns=[*RUN_COLUMNS, *RECORD_COLUMNS]), pd.DataFrame(columns=[*KEYS, *LABELS, "epoch"])
    return _tidy(pd.DataFrame(runs), pd.concat(epochs, ignore_index=True))


def _tidy(runs: pd.DataFrame, epochs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Key columns first, rows in key order, integer columns that may be missing as nullable integers."""
    runs = runs.sort_values(KEYS, ignore_index=True).astype({"best_epoch": "Int64", "diverged_epoch": "Int64"})
    first = [*KEYS, *LABELS]
    epochs = epochs[first + [c for c in epochs.columns if c not in first]]
    return runs, epochs.sort_values([*KEYS, "epoch"], ignore_index=True)


def write_shard(summary_paths: Iterable[str | Path], outputs: Mapping[str, str]) -> None:
    """This invocation's runs of one protocol as a shard (``outputs``: runs, epochs CSV tables)."""
    runs, epochs = run_tables(summary_paths)
    write_table(outputs["runs"], runs)
    write_table(outputs["epochs"], epochs)


def dt_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Every neuron's dt in the EP runs ``runs``: drawn from each run's dt spec and seed, as training draws it."""
    dts = []
    for row in runs[[*KEYS, *LABELS, "config"]].itertuples(index=False):
        run = json.loads(row.config)
        for layer, dt in enumerate(resolve_dt(run["variant"]["dt"], run["model"]["sizes"], run["seed"]), start=1):
            dts.append(pd.DataFrame({**{k: getattr(row, k) for k in [*KEYS, *LABELS]}, "layer": layer,
                                     "neuron": range(len(dt)), "dt": dt.double().numpy()}))
    return pd.concat(dts, ignore_index=True) if dts else pd.DataFrame(columns=[*KEYS, *LABELS, "layer", "neuron", "dt"])


def merged(records: Mapping[str, Sequence[str]], shard: Mapping[str, str], declared: Sequence[Sequence]
           ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, epochs) of one protocol: the committed shards ``records`` (runs and epochs tables, path order) and this
    invocation's ``shard``, each declared run once with the epochs of the record its run row came from."""
    protocol = declared[0][0][0] if declared else None
    tables = merge_experiment(records, shard, KEYS, declared, "grid", scope={"protocol": protocol})
    return _tidy(tables["runs"], tables["epochs"])


def aggregate(records: Mapping[str, Sequence[str]], shard: Mapping[str, str], outputs: Mapping[str, str],
              declared: Sequence[Sequence]) -> None:
    """One protocol's tables (CSV and parquet), every EP run's dt values and the provenance of its rows."""
    runs, epochs = merged(records, shard, declared)
    write_provenance(outputs["provenance"], {f"{runs['protocol'].iloc[0]} runs" if len(runs) else "runs": runs}, "grid")
    runs = runs.drop(columns="record")
    write_table(outputs["runs_csv"], runs)
    write_table(outputs["runs"], runs)
    write_table(outputs["epochs_csv"], epochs)
    write_table(outputs["epochs"], epochs)
    write_table(outputs["dt"], dt_table(runs[runs["variant"] != "backprop"]))
