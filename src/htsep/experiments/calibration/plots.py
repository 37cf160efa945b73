"""The calibration search's figure, in the style of ``htsep.report.style``: final validation accuracy over the
search."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import pandas as pd

from ...report.style import set_style
from .selection import select


def calibration_figure(table: pd.DataFrame, calibration: Mapping):
    """One panel per calibrated kind (EP, backprop): every search point's seeds (dots) and mean (bar), the
    point the declared rule selects in red; ``table`` as htsep.experiments.calibration.selection writes it,
    ``calibration`` the config key the search was declared in."""
    set_style()
    selection = select(table, {"calibration": calibration})
    kinds = [k for k in ("ep", "backprop") if k in set(table["kind"])]
    widths = [max(2.5, 0.42 * table.loc[table["kind"] == k, "point"].nunique() + 1) for k in kinds]
    fig, axes = plt.subplots(1, len(kinds), figsize=(sum(widths), 3.4), width_ratios=widths, layout="constrained",
                             squeeze=False)
    for ax, kind in zip(axes[0], kinds, strict=True):
        rows = table[table["kind"] == kind]
        names = list(dict.fromkeys(rows.sort_values("order")["point"]))
        means = rows.groupby("point")["val_acc"].mean().reindex(names)
        chosen = selection[kind]["point"]
        ax.bar(range(len(names)), 100 * means.to_numpy(), color=["#d7301f" if n == chosen else "#bdbdbd"
                                                                 for n in names], width=0.7)
        for i, name in enumerate(names):
            acc = rows.loc[rows["point"] == name, "val_acc"]
            ax.plot([i] * len(acc), 100 * acc.to_numpy(), "o", color="black", markersize=2.5)
        finite = 100 * rows["val_acc"].dropna()
        if len(finite):
            ax.set_ylim(max(0, finite.min() - 3), min(100, finite.max() + 1.5))
        ax.set_xticks(range(len(names)), [n.replace("_", "\n") for n in names], fontsize=5.5)
        ax.set_ylabel("Final validation accuracy (%)")
        ax.set_title(f"{'EP' if kind == 'ep' else 'Backprop'} (selected: {chosen})", fontsize=7)
    return fig
