"""The paper's calibration appendix (``paper/generated/calibration.tex``), written by the template
``templates/calibration.tex.j2`` from the calibration table and selection (``htsep.experiments.calibration.selection``):
the declared search, the selection rule, every point's mean validation accuracy and the setting it selected."""

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
    return ", ".join(f"{v:g}" for v in value) if isinstance(value, list) else tex_escape(f"{value:g}" if isinstance(
        value, float) else value)


def point_rows(table: pd.DataFrame, selection: Mapping, kind: str) -> list[dict]:
    """One row per search point of ``kind``: its values, mean and s.d. of validation accuracy over seeds, runs
    that diverged and the largest number of never-predicted classes at the end."""
    rows = []
    own = table[table["kind"] == kind]
    keys = list(selection[kind]["values"])
    for point, group in own.sort_values("order").groupby("point", sort=False):
        first = group.iloc[0]
        rows.append({"values": [_value(json.loads(first[k]) if isinstance(first[k], str) and first[k].startswith("[")
                                       else first[k]) for k in keys],
                     "mean": group["val_acc"].fillna(0.0).mean(), "std": group["val_acc"].std(ddof=1),
                     "n_diverged": int(group["diverged"].sum()),
                     "never_predicted": group["classes_never_predicted"].max()
                     if "classes_never_predicted" in group else float("nan"),
                     "selected": point == selection[kind]["point"]})
    return rows


def calibration_text(inputs: Mapping[str, str], output: str | Path, config: Mapping, caption: str) -> None:
    """Write ``paper/generated/calibration.tex`` from the calibration table and selection (``caption``: the
    figure's)."""
    table = read_table(inputs["table"], "calibration table")
    selection = read_json(inputs["selection"], "calibration selection")
    calibration = config["calibration"]
    kinds = [{"name": "EP" if kind == "ep" else "backprop", "rows": point_rows(table, selection, kind),
              "columns": [tex_escape(k) for k in selection[kind]["values"]], "selected": selection[kind]}
             for kind in ("ep", "backprop") if kind in selection]
    write_text(output, template(TEMPLATE).render(
        dataset=tex_escape(selection["dataset"]), variant=tex_escape(selection["variant"]),
        n_seeds=len(selection["seeds"]), rule=RULES[calibration["selection"]], kinds=kinds,
        caption=tex_escape(caption)))
