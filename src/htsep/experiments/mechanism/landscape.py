"""The dt landscape's tables: one row per run (how it broke, htsep.outcomes), and per dt mean x spread with break
rates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from ...files import write_table
from ...outcomes import rates, run_outcomes

LANDSCAPE_CRITERIA = ("diverged", "chance", "collapse")


def landscape_tables(summary_paths: Sequence[str | Path], outputs: Mapping[str, str], params: Mapping) -> None:
    """Landscape tables: one row per run, and per dt mean x spread with break rates."""
    analysis = params["analysis"]
    runs = run_outcomes(summary_paths, {"criteria": LANDSCAPE_CRITERIA, "chance_acc": params["chance_acc"],
                                        "collapse_drop": analysis["collapse_drop"]})
    runs = runs.sort_values(["mean", "std", "seed"], ignore_index=True)
    summary = rates(runs, ["dataset", "dataset_label", "mean", "std"], analysis["alpha"])
    write_table(outputs["runs"], runs)
    write_table(outputs["runs_csv"], runs)
    write_table(outputs["table"], summary)
