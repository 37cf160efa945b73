"""The dt landscape's tables: this invocation's runs as a shard (one row per run: how it broke, htsep.outcomes), and
the committed landscape shards merged with it (htsep.records) into the per-run table and the per dt mean x spread
table with break rates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from ...files import write_table
from ...outcomes import rates, run_outcomes
from ...records import merge_experiment, write_provenance

LANDSCAPE_CRITERIA = ("diverged", "chance", "collapse")
KEYS = ["dataset", "mean", "std", "seed"]  # a landscape run


def write_shard(summary_paths: Sequence[str | Path], output: str | Path, params: Mapping) -> None:
    """This invocation's landscape runs as a shard (commit it under benchmarks/records/<date>-mechanism/shards/ as
    <name>.landscape.csv)."""
    write_table(output, run_outcomes(summary_paths, {"criteria": LANDSCAPE_CRITERIA, "chance_acc": params["chance_acc"],
                                                     "collapse_drop": params["analysis"]["collapse_drop"]}))


def landscape_tables(records: Sequence[str], shard: Sequence[str], outputs: Mapping[str, str], params: Mapping
                     ) -> None:
    """Landscape tables from the committed landscape shards and this invocation's (``shard``: its table, or none):
    one row per declared run, and per dt mean x spread with break rates; and where the runs came from."""
    runs = merge_experiment({"runs": records}, {"runs": shard[0]} if shard else {}, KEYS, params["declared"],
                            "mechanism landscape")["runs"]
    write_provenance(outputs["provenance"], {"runs": runs}, "mechanism landscape")
    runs = runs.drop(columns="record").sort_values(["mean", "std", "seed"], ignore_index=True)
    write_table(outputs["runs"], runs)
    write_table(outputs["runs_csv"], runs)
    write_table(outputs["table"], rates(runs, ["dataset", "dataset_label", "mean", "std"], params["analysis"]["alpha"]))
