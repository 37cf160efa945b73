"""The factorial's figure, in the style of ``htsep.report.style``: accuracy over the dt mean per spread, and the
mixed model's contrasts with their CIs, per dataset."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ...report.style import set_style

SPREAD_COLOURS = ("#636363", "#d7301f", "#2b8cbe", "#31a354")  # spread 0 first


def factorial_figure(runs: pd.DataFrame, effects: pd.DataFrame, datasets: Sequence[str], factorial: Mapping):
    """Per dataset (columns): mean final test accuracy of the runs that did not fail, +- s.d. across seeds, over the dt
    mean, one line per spread, failures as k/n beside the points (top); each contrast's estimate with its CI (bottom:
    the mean's against the reference mean, the spread's at each matched mean and averaged over means)."""
    set_style()
    shown = [d for d in datasets if d in set(runs["dataset"])]
    fig, axes = plt.subplots(2, max(len(shown), 1), figsize=(3.4 * max(len(shown), 1), 5.6), squeeze=False,
                             layout="constrained", height_ratios=[1, 1.1])
    spreads = sorted(runs["dt_spread"].unique())
    for column, dataset in enumerate(shown):
        own = runs[runs["dataset"] == dataset]
        top, bottom = axes[0, column], axes[1, column]
        for colour, spread in zip(SPREAD_COLOURS, spreads, strict=False):
            cells = own[own["dt_spread"] == spread].groupby("dt_mean")
            ok = own[(own["dt_spread"] == spread) & ~own["broke"]].groupby("dt_mean")["final_test_acc"]
            means, sds = 100 * ok.mean(), 100 * ok.std(ddof=1)
            top.errorbar(means.index, means.to_numpy(), yerr=sds.to_numpy(), color=colour, marker="o", ms=3.5,
                         capsize=2, lw=1.2, label="uniform" if spread == 0 else f"spread {spread:g}")
            for mean, group in cells:
                if group["broke"].any() and mean in means.index:
                    top.annotate(f"{int(group['broke'].sum())}/{len(group)}", (mean, means[mean]), fontsize=6,
                                 xytext=(3, 3), textcoords="offset points", color=colour)
        top.set_xscale("log")
        top.set_xticks(sorted(own["dt_mean"].unique()), [f"{m:g}" for m in sorted(own["dt_mean"].unique())])
        top.minorticks_off()
        top.set_xlabel("dt mean")
        top.set_ylabel("Final test accuracy (%)")
        top.set_title(own["dataset_label"].iloc[0])
        top.legend(fontsize=6.5, frameon=False)
        rows = effects[effects["dataset"] == dataset].reset_index(drop=True)
        y = np.arange(len(rows))[::-1]
        colours = [SPREAD_COLOURS[spreads.index(s)] if s in spreads else "black" for s in rows["dt_spread"]]
        bottom.hlines(y, rows["ci_low"], rows["ci_high"], color=colours, lw=1.5)
        bottom.scatter(rows["estimate"], y, color=colours, s=12, zorder=3)
        bottom.axvline(0, color="black", lw=0.7)
        bottom.set_yticks(y, [_label(r, factorial["reference_mean"]) for _, r in rows.iterrows()], fontsize=6)
        bottom.set_xlabel("Effect (points, 95% CI)")
    return fig


def _label(row: pd.Series, reference: float) -> str:
    if row["effect"] == "mean":
        return f"mean {row['dt_mean']:g} vs {reference:g}"
    where = "all means" if pd.isna(row["dt_mean"]) else f"mean {row['dt_mean']:g}"
    return f"spread {row['dt_spread']:g} vs 0, {where}"
