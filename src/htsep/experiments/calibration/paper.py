"""The paper's calibration appendix (``paper/generated/calibration.tex``), written by the template
``templates/calibration.tex.j2`` from the calibration table and selection (``htsep.experiments.calibration.selection``):
the declared searches, the selection rule, every point's mean validation accuracy and the settings selected."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from ...files import read_json, read_table, write_text
from ...report.tex import template, tex_escape

TEMPLATE = Path(__file__).with_name("templates") / "calibration.tex.j2"

RULES = {"highest_mean_validation_accuracy": "the highest mean final validation accuracy over seeds, ties (within "
                                             "$10^{-9}$) to the earlier, simpler point of the search order"}


def _value(value) -> str:
    if isinstance(value, str) and value.startswith("["):
        value = json.loads(value)
    return ", ".join(f"{v:g}" for v in value) if isinstance(value, list) else tex_escape(f"{value:g}" if isinstance(
        value, float) else value)


def search_table(table: pd.DataFrame, columns: Mapping[str, Mapping], keys: list[str]) -> dict:
    """One search table: a row per point (its values), a column per search (``columns``: header -> the rows of
    ``table`` it holds and its selected point) with the mean and s.d. of validation accuracy over seeds and the runs
    that diverged; the selected cell of each column marked."""
    points = table.sort_values("order").drop_duplicates("point")
    rows = []
    for _, point in points.iterrows():
        cells = []
        for column in columns.values():
            runs = column["runs"][column["runs"]["point"] == point["point"]]
            cells.append({"mean": runs["val_acc"].fillna(0.0).mean() if len(runs) else float("nan"),
                          "std": runs["val_acc"].std(ddof=1), "n_diverged": int(runs["diverged"].sum()),
                          "selected": point["point"] == column["selected"]})
        rows.append({"values": [_value(point[k]) for k in keys], "cells": cells})
    return {"keys": [tex_escape(k) for k in keys], "headers": [tex_escape(h) for h in columns], "rows": rows}


def calibration_text(inputs: Mapping[str, str], output: str | Path, config: Mapping, caption: str,
                     labels: Mapping[str, str]) -> None:
    """Write ``paper/generated/calibration.tex`` from the calibration table and selection (``caption``: the
    figure's; ``labels``: each dataset's display name)."""
    table = read_table(inputs["table"], "calibration table")
    selection = read_json(inputs["selection"], "calibration selection")
    calibration = config["calibration"]
    ep, backprop = table[table["kind"] == "ep"], table[table["kind"] == "backprop"]
    ep_columns = {f"{protocol} ({chosen['variant']})": {"runs": ep[ep["variant"] == chosen["variant"]],
                                                        "selected": chosen["point"]}
                  for protocol, chosen in selection["protocols"].items()}
    bp_columns = {labels[dataset]: {"runs": backprop[backprop["dataset"] == dataset],
                                                   "selected": chosen["point"]}
                  for dataset, chosen in selection["backprop"].items()}
    searches = [{"name": "EP", "label": "ep", "table": search_table(ep, ep_columns, list(calibration["search"]))}
                if ep_columns else None,
                {"name": "backprop", "label": "backprop",
                 "table": search_table(backprop, bp_columns, list(calibration["backprop_search"]))}
                if bp_columns else None]
    write_text(output, template(TEMPLATE).render(
        dataset=tex_escape(labels[calibration["dataset"]]), n_seeds=len(selection["seeds"]),
        protocols=[{"name": tex_escape(p), "variant": tex_escape(c["variant"]), "point": tex_escape(c["point"])}
                   for p, c in selection["protocols"].items()],
        backprop=[{"dataset": tex_escape(labels[d]), "point": tex_escape(c["point"])}
                  for d, c in selection["backprop"].items()],
        ceiling=[{"protocol": tex_escape(p), "ep": c["mean_val_acc"],
                  "backprop": selection["backprop"][c["dataset"]]["mean_val_acc"]}
                 for p, c in selection["protocols"].items() if c["dataset"] in selection["backprop"]],
        rule=RULES[calibration["selection"]], searches=[s for s in searches if s], caption=tex_escape(caption)))
