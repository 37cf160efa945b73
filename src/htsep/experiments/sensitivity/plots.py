"""The sensitivity figure, in the style of ``htsep.report.style``: per dataset and axis, each variant's accuracy over
the levels, and the contrast of heterogeneity at a matched mean beside the positive control, with their CIs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ...report.style import Order, legend_below, set_style

AXIS_LABELS = {"free_steps": "free steps T1", "nudged_steps": "nudged steps T2", "beta": "beta"}


def sensitivity_figure(cells: pd.DataFrame, contrasts: pd.DataFrame, datasets: Sequence[str],
                       variants: Sequence[Mapping]):
    """Columns: (dataset, axis). Top: mean final test accuracy (runs that did not fail) +- s.d. per variant over the
    levels (open marker: the protocol's own point). Bottom: the contrast (variant minus baseline, points) at each
    level with its 95% CI, and the positive control at its level (black)."""
    set_style()
    if not len(cells):
        fig, ax = plt.subplots(figsize=(7.2, 1.2), layout="constrained")
        ax.text(0.5, 0.5, "No sensitivity run has been recorded yet.", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    order = Order(cells, datasets, variants)
    columns = [(d, a) for d in order.datasets for a in cells.loc[cells["dataset"] == d, "axis"].unique()]
    fig, axes = plt.subplots(2, len(columns), figsize=(max(2.4 * len(columns), 4.0), 4.6), squeeze=False,
                             layout="constrained", height_ratios=[1.2, 1])
    for j, (dataset, axis) in enumerate(columns):
        own = cells[(cells["dataset"] == dataset) & (cells["axis"] == axis)]
        levels = sorted(own["level"].unique())
        x = {level: i for i, level in enumerate(levels)}
        top, bottom = axes[0, j], axes[1, j]
        for k, variant in enumerate(order.variants):
            line = own[own["variant"] == variant].sort_values("level")
            if not len(line):
                continue
            shift = (k - (len(order.variants) - 1) / 2) * 0.06
            xs = np.array([x[level] for level in line["level"]]) + shift
            top.errorbar(xs, 100 * line["accuracy"], yerr=100 * line["accuracy_sd"].fillna(0),
                         color=order.colours[variant], marker="o", ms=3, capsize=1.5, lw=1.1)
            base = line["base_point"].to_numpy(bool)
            top.scatter(xs[base], 100 * line["accuracy"].to_numpy()[base], s=28, facecolors="white",
                        edgecolors=order.colours[variant], zorder=3)
        top.set_title(f"{order.dataset_labels[dataset]}: {AXIS_LABELS.get(axis, axis)}", fontsize=8)
        top.set_xticks(range(len(levels)), [f"{level:g}" for level in levels])
        if j == 0:
            top.set_ylabel("Final test accuracy (%)")
        rows = contrasts[(contrasts["dataset"] == dataset) & (contrasts["axis"] == axis)]
        for kind, colour, offset in (("contrast", "#d7301f", -0.08), ("positive_control", "black", 0.08)):
            part = rows[rows["kind"] == kind]
            xs = np.array([x[level] for level in part["level"]]) + offset
            bottom.errorbar(xs, 100 * part["difference"], yerr=[100 * (part["difference"] - part["ci_low"]),
                                                                 100 * (part["ci_high"] - part["difference"])],
                            fmt="D" if kind == "positive_control" else "o", color=colour, ms=3.5, capsize=2, lw=1.2,
                            label=_label(part) if len(part) else None)
        bottom.axhline(0, color="black", lw=0.6)
        bottom.set_xticks(range(len(levels)), [f"{level:g}" for level in levels])
        bottom.set_xlabel(AXIS_LABELS.get(axis, axis))
        if j == 0:
            bottom.set_ylabel("Paired difference (points)")
        bottom.legend(fontsize=5.5, frameon=False)
    legend_below(fig, order)
    return fig


def _label(part: pd.DataFrame) -> str:
    return f"{part['variant'].iloc[0]} - {part['baseline'].iloc[0]}"
