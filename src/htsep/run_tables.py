"""The tables of trained EP runs (the grid's, the factorial's): one row per run and one per run and epoch, read from
run folders (this invocation's shard) or merged from committed shards with this invocation's (htsep.records).

Runs of the study's run layout (``results/runs/<protocol>/<dataset>/<variant>/seed<seed>``) are keyed by protocol,
dataset, variant and seed; the backprop reference's rows have protocol and variant ``backprop``
(htsep.training.backprop) and no dt.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from .files import read_run, write_table
from .records import RECORD_COLUMNS, config_json, merge_experiment

RUN_KEYS = ["protocol", "dataset", "variant", "seed"]  # a trained run of the study's run layout
LABELS = ["dataset_label", "split"]
LAB_ERA = "lab"  # the protocol of summaries written before protocols existed (e.g. benchmarks/records/2026-11-27-h200)
RUN_COLUMNS = [*RUN_KEYS, *LABELS, "final_test_acc", "final_train_acc", "best_test_acc", "best_epoch", "diverged",
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
        epochs.append(metrics.assign(**{k: summary[k] for k in [*RUN_KEYS, *LABELS]}))
    if not runs:
        return (pd.DataFrame(columns=[*RUN_COLUMNS, *RECORD_COLUMNS]),
                pd.DataFrame(columns=[*RUN_KEYS, *LABELS, "epoch"]))
    return tidy(pd.DataFrame(runs), pd.concat(epochs, ignore_index=True))


def tidy(runs: pd.DataFrame, epochs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Key columns first, rows in key order, integer columns that may be missing as nullable integers."""
    runs = runs.sort_values(RUN_KEYS, ignore_index=True).astype({"best_epoch": "Int64", "diverged_epoch": "Int64"})
    first = [*RUN_KEYS, *LABELS]
    epochs = epochs[first + [c for c in epochs.columns if c not in first]]
    return runs, epochs.sort_values([*RUN_KEYS, "epoch"], ignore_index=True)


def write_shard(summary_paths: Iterable[str | Path], outputs: Mapping[str, str]) -> None:
    """This invocation's runs as a shard (``outputs``: runs, epochs CSV tables)."""
    runs, epochs = run_tables(summary_paths)
    write_table(outputs["runs"], runs)
    write_table(outputs["epochs"], epochs)


def merged(records: Mapping[str, Sequence[str]], shard: Mapping[str, str], declared: Sequence[Sequence],
           experiment: str, scope: Mapping | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, epochs): the committed shards ``records`` (runs and epochs tables, path order) and this invocation's
    ``shard``, each declared run once with the epochs of the record its run row came from (``scope``: column ->
    value, the part asked for)."""
    tables = merge_experiment(records, shard, RUN_KEYS, declared, experiment, scope=scope)
    return tidy(tables["runs"], tables["epochs"])
