"""The robustness figure, in the style of ``htsep.report.style``: each variant's mean accuracy drop over the level of
each perturbation, one row per protocol and dataset."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import pandas as pd

from ...report.style import Order, legend_below, set_style

PANELS = {"input_noise": "Input noise (s.d., pixels)", "weight_noise": "Weight noise (relative s.d.)",
          "free_steps": "Free steps at inference (T1)", "dt_swap": "dt changed after training"}


def robustness_figure(summary: pd.DataFrame, datasets: Sequence[str], variants: Sequence[Mapping]):
    """Rows: protocol x dataset; columns: the perturbations; each variant's mean drop of test accuracy from its clean
    accuracy (points, over seeds) against the level (dt changed: per condition)."""
    set_style()
    order = Order(summary, datasets, variants)
    rows = [(p, d) for p in summary["protocol"].unique() for d in order.datasets
            if ((summary["protocol"] == p) & (summary["dataset"] == d)).any()]
    columns = [c for c in PANELS if c in set(summary["perturbation"])]
    if not rows:
        fig, ax = plt.subplots(figsize=(7.2, 1.2), layout="constrained")
        ax.text(0.5, 0.5, "No model has been evaluated yet.", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    fig, axes = plt.subplots(len(rows), len(columns), figsize=(7.2, 1.75 * len(rows) + 0.6), squeeze=False,
                             layout="constrained")
    for i, (protocol, dataset) in enumerate(rows):
        own = summary[(summary["protocol"] == protocol) & (summary["dataset"] == dataset)]
        for j, perturbation in enumerate(columns):
            ax, part = axes[i, j], own[own["perturbation"] == perturbation]
            for variant in order.variants:
                line = part[part["variant"] == variant]
                if not len(line):
                    continue
                if perturbation == "dt_swap":
                    ax.scatter(line["condition"], 100 * line["drop"], color=order.colours[variant], s=14)
                else:
                    line = line.sort_values("level")
                    ax.plot(line["level"], 100 * line["drop"], color=order.colours[variant], marker="o", ms=2.5,
                            lw=1.1)
            ax.axhline(0, color="black", lw=0.6)
            if perturbation == "dt_swap":
                ax.tick_params(axis="x", labelsize=5.5, rotation=15)
            if perturbation == "free_steps":
                levels = sorted(part["level"].dropna().unique())
                ax.set_xscale("log")
                ax.set_xticks(levels, [f"{level:g}" for level in levels])
                ax.minorticks_off()
            if i == len(rows) - 1:
                ax.set_xlabel(PANELS[perturbation], fontsize=7)
            if j == 0:
                ax.set_ylabel(f"{protocol}, {order.dataset_labels[dataset]}\ndrop (points)", fontsize=7)
    legend_below(fig, order)
    return fig
