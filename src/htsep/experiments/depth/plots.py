"""The depth figure, in the style of ``htsep.report.style``: per dataset, each arm's accuracy and failures at both
T1 levels, and the free phase's residual per layer over the epochs at each level."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ...report.style import Order, legend_below, set_style

LAYER_STYLES = ("-", "--", ":", "-.")  # hidden layers in order, then the output


def depth_figure(cells: pd.DataFrame, residuals: pd.DataFrame, datasets: Sequence[str],
                 variants: Sequence[Mapping]):
    """Rows: datasets. Left: mean final test accuracy of the runs that did not fail (bars: s.d. across seeds) per
    arm at each T1, failed runs k/n beside it. Right, one panel per T1: the free-phase residual mean |s_T1 - s_T1-1|
    per layer (line style) over the epochs, mean over seeds per arm (log scale)."""
    set_style()
    if not len(cells):
        fig, ax = plt.subplots(figsize=(7.2, 1.2), layout="constrained")
        ax.text(0.5, 0.5, "No depth run has been recorded yet.", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    order = Order(cells, datasets, variants)
    levels = sorted(cells["free_steps"].unique())
    fig, axes = plt.subplots(len(order.datasets), 1 + len(levels), figsize=(7.2, 2.5 * len(order.datasets)),
                             squeeze=False, layout="constrained")
    for i, dataset in enumerate(order.datasets):
        own = cells[cells["dataset"] == dataset]
        ax = axes[i, 0]
        for k, variant in enumerate(order.variants):
            line = own[own["variant"] == variant].sort_values("free_steps")
            xs = np.array([levels.index(t) for t in line["free_steps"]]) + (k - (len(order.variants) - 1) / 2) * 0.12
            ax.errorbar(xs, 100 * line["accuracy"], yerr=100 * line["accuracy_sd"].fillna(0), fmt="o",
                        color=order.colours[variant], ms=4, capsize=2)
            for x, y, failed, n in zip(xs, 100 * line["accuracy"], line["n_failed"], line["n_runs"], strict=True):
                if failed:
                    ax.annotate(f"{failed}/{n}", (x, y), textcoords="offset points", xytext=(3, -8), fontsize=6,
                                color=order.colours[variant])
        ax.set_xticks(range(len(levels)), [f"T1 = {t}" for t in levels])
        ax.set_ylabel("Final test accuracy (%)")
        ax.set_title(order.dataset_labels[dataset], fontsize=8)
        for j, t1 in enumerate(levels):
            ax = axes[i, 1 + j]
            part = residuals[(residuals["dataset"] == dataset) & (residuals["free_steps"] == t1)]
            for variant in order.variants:
                for layer, group in part[part["variant"] == variant].groupby("layer"):
                    ax.plot(group["epoch"], group["residual"], color=order.colours[variant],
                            ls=LAYER_STYLES[(int(layer) - 1) % len(LAYER_STYLES)], lw=1.1)
            ax.set_yscale("log")
            ax.set_xlabel("Epoch")
            ax.set_title(f"residual per layer, T1 = {t1}", fontsize=8)
            if j == 0:
                ax.set_ylabel("mean |s(T1) - s(T1 - 1)|")
    layers = sorted(residuals["layer"].unique()) if len(residuals) else []
    handles = [plt.Line2D([], [], color="grey", ls=LAYER_STYLES[(int(l) - 1) % len(LAYER_STYLES)],
                          label="output" if l == max(layers) else f"hidden {int(l)}") for l in layers]
    axes[0, -1].legend(handles=handles, fontsize=6, frameon=False)
    legend_below(fig, order)
    return fig
