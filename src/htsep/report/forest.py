"""Forest plots of paired effects, in the study's style (htsep.report.style): the grid's paired effects and the
confirmatory primary tests draw theirs with ``forest``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .style import set_style

VERDICT_COLOURS = {"higher": "#d7301f", "lower": "#2166ac", "equivalent": "#1b7837", "inconclusive": "#7f7f7f",
                   "untestable": "#bdbdbd"}
MARGIN_COLOUR = VERDICT_COLOURS["equivalent"]


def _interval(effect: float, low: float, high: float, scale: float = 1.0) -> list[list[float]] | None:
    """Error bar extents of a CI around ``effect``, times ``scale`` (None without a CI)."""
    return [[scale * (effect - low)], [scale * (high - effect)]] if np.isfinite(low) else None


def forest(rows: pd.DataFrame, verdicts: Sequence[str], margins: Mapping[str, float] | None = None):
    """Left: mean paired difference of final test accuracy (percentage points) with its CI; right: s.d. ratio with its
    CI (log scale); one line per row, top to bottom, labelled ``label`` and coloured by each side's verdict.

    ``rows``: label, difference, difference_low, difference_high, difference_verdict (fractions) and ratio, ratio_low,
    ratio_high, ratio_verdict; ``verdicts``: the legend's; ``margins`` (accuracy as a fraction, sd_ratio): shaded
    equivalence margins."""
    set_style()
    rows = rows.reset_index(drop=True)
    fig, (left, right) = plt.subplots(1, 2, figsize=(7.2, 0.32 * max(len(rows), 1) + 1.4), sharey=True,
                                      layout="constrained")
    for y, row in enumerate(rows.itertuples()):
        left.errorbar([100 * row.difference], [y], xerr=_interval(row.difference, row.difference_low,
                                                                  row.difference_high, 100),
                      color=VERDICT_COLOURS[row.difference_verdict], marker="o", ms=4, capsize=2)
        if np.isfinite(row.ratio):
            right.errorbar([row.ratio], [y], xerr=_interval(row.ratio, row.ratio_low, row.ratio_high),
                           color=VERDICT_COLOURS[row.ratio_verdict], marker="s", ms=4, capsize=2)
    if margins:
        left.axvspan(-100 * margins["accuracy"], 100 * margins["accuracy"], color=MARGIN_COLOUR, alpha=0.08, lw=0)
        right.axvspan(1 / margins["sd_ratio"], margins["sd_ratio"], color=MARGIN_COLOUR, alpha=0.08, lw=0)
    left.axvline(0, color="black", lw=0.7)
    left.set_xlabel("Final test accuracy, variant minus baseline (pp)")
    right.axvline(1, color="black", lw=0.7)
    right.set_xscale("log")
    right.set_xlabel("S.d. across seeds, variant / baseline")
    left.set_yticks(range(len(rows)), list(rows["label"]) if len(rows) else [], fontsize=6.5)
    left.set_ylim(len(rows) - 0.5, -0.5)
    handles = [plt.Line2D([], [], color=VERDICT_COLOURS[v], marker="o", lw=0, label=v) for v in verdicts]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False, fontsize=7)
    return fig
