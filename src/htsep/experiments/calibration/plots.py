"""The calibration searches' figure, in the style of ``htsep.report.style``: final validation accuracy over each
search."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import pandas as pd

from ...config import BACKPROP
from ...report.style import set_style
from .plan import search_points
from .selection import select


def _text(value) -> str:
    return "-".join(f"{v:g}" for v in value) if isinstance(value, list) else (
        f"{value:g}" if isinstance(value, float) else str(value))


def calibration_figure(table: pd.DataFrame, calibration: Mapping):
    """One panel per search (EP per reference variant, backprop per dataset): every point's seeds (dots) and mean
    (bar), the point the declared rule selects in red; ``table`` as htsep.experiments.calibration.selection writes
    it, ``calibration`` the config key the searches were declared in."""
    set_style()
    selection = select(table, {"calibration": calibration})
    values = {kind: search_points({"calibration": calibration}, kind) for kind in ("ep", "backprop")}
    protocols = {v: ", ".join(p for p, pv in calibration["protocols"].items() if pv == v)
                 for v in calibration["protocols"].values()}
    chosen = {**{("ep", c["dataset"], c["variant"]): c["point"] for c in selection["protocols"].values()},
              **{("backprop", d, BACKPROP): c["point"] for d, c in selection["backprop"].items()}}
    panels = [key for key in chosen if len(table[(table["kind"] == key[0]) & (table["dataset"] == key[1])
                                                 & (table["variant"] == key[2])])]
    width = max(3.0, 0.3 * table.groupby("kind")["point"].nunique().max() + 1)
    fig, axes = plt.subplots(len(panels), 1, figsize=(width, 2.4 * len(panels)), layout="constrained", squeeze=False)
    for ax, (kind, dataset, variant) in zip(axes[:, 0], panels, strict=True):
        rows = table[(table["kind"] == kind) & (table["dataset"] == dataset) & (table["variant"] == variant)]
        names = list(dict.fromkeys(rows.sort_values("order")["point"]))
        means = rows.groupby("point")["val_acc"].mean().reindex(names)
        best = chosen[(kind, dataset, variant)]
        ax.bar(range(len(names)), 100 * means.to_numpy(), color=["#d7301f" if n == best else "#bdbdbd"
                                                                 for n in names], width=0.7)
        for i, name in enumerate(names):
            acc = rows.loc[rows["point"] == name, "val_acc"]
            ax.plot([i] * len(acc), 100 * acc.to_numpy(), "o", color="black", markersize=2.5)
        finite = 100 * rows["val_acc"].dropna()
        if len(finite):
            ax.set_ylim(max(0, finite.min() - 3), min(100, finite.max() + 1.5))
        ax.set_xticks(range(len(names)), [", ".join(f"{k} {_text(v)}" for k, v in values[kind][n].items())
                                          for n in names], fontsize=5, rotation=90)
        ax.set_ylabel("Validation acc. (%)")
        ax.set_title(f"EP with {variant} ({protocols[variant]}), {dataset}" if kind == "ep"
                     else f"Backprop, {dataset}", fontsize=7)
    return fig
