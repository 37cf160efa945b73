"""The confirmatory runs' figure, in the study's style (htsep.report.style): a forest plot of the paired effects of
each preregistered contrast with their CIs, per protocol and dataset."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ...report.style import set_style

VERDICT_COLOURS = {"higher": "#d7301f", "lower": "#2166ac", "equivalent": "#1b7837", "inconclusive": "#7f7f7f",
                   "untestable": "#bdbdbd"}


def forest_figure(tests: pd.DataFrame, preregistration: Mapping):
    """Left: mean paired difference of final test accuracy (percentage points) with its bootstrap CI and the
    equivalence margin; right: s.d. ratio with its CI (log scale) and the margin; one row per protocol, dataset and
    contrast, coloured by the Holm-adjusted verdict."""
    set_style()
    rows = tests[tests["test"] == "accuracy"].reset_index(drop=True)
    spreads = tests[tests["test"] == "spread"].set_index(["protocol", "dataset", "contrast"])
    n = max(len(rows), 1)
    fig, (left, right) = plt.subplots(1, 2, figsize=(7.2, 0.32 * n + 1.4), sharey=True, layout="constrained")
    labels = []
    for y, row in enumerate(rows.itertuples()):
        colour = VERDICT_COLOURS[row.verdict]
        left.errorbar([100 * row.effect], [y], xerr=[[100 * (row.effect - row.ci_low)], [100 * (row.ci_high -
                      row.effect)]] if np.isfinite(row.ci_low) else None, color=colour, marker="o", ms=4, capsize=2)
        spread = spreads.loc[(row.protocol, row.dataset, row.contrast)]
        if np.isfinite(spread["effect"]):
            xerr = [[spread["effect"] - spread["ci_low"]], [spread["ci_high"] - spread["effect"]]] \
                if np.isfinite(spread["ci_low"]) else None
            right.errorbar([spread["effect"]], [y], xerr=xerr, color=VERDICT_COLOURS[spread["verdict"]], marker="s",
                           ms=4, capsize=2)
        labels.append(f"{row.protocol} · {row.dataset_label} · {row.contrast}")
    margin = 100 * preregistration["equivalence"]["accuracy"]
    left.axvspan(-margin, margin, color="#1b7837", alpha=0.08, lw=0)
    left.axvline(0, color="black", lw=0.7)
    left.set_xlabel("Final test accuracy, variant minus baseline (pp)")
    ratio = preregistration["equivalence"]["sd_ratio"]
    right.axvspan(1 / ratio, ratio, color="#1b7837", alpha=0.08, lw=0)
    right.axvline(1, color="black", lw=0.7)
    right.set_xscale("log")
    right.set_xlabel("S.d. across seeds, variant / baseline")
    left.set_yticks(range(len(labels)), labels, fontsize=6.5)
    left.set_ylim(len(labels) - 0.5, -0.5)
    handles = [plt.Line2D([], [], color=c, marker="o", lw=0, label=v) for v, c in VERDICT_COLOURS.items()]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False, fontsize=7)
    return fig
