"""The grid's figures, drawn from the aggregated tables (``htsep.experiments.grid.tables``) in the study's style
(``htsep.report.style``). Each plotting function takes its tables and config parts as keyword arguments and returns
the figure (see ``htsep.report.figures``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from ...report.forest import forest
from ...report.style import PAGE_WIDTH, PANEL, Order, epoch_axis, legend_below, panels, set_style
from . import stats


def _finite_epochs(epochs: pd.DataFrame) -> pd.DataFrame:
    return epochs[~epochs["diverged"].astype(bool)].sort_values(["dataset", "variant", "seed", "epoch"])




def accuracy_curves(epochs: pd.DataFrame, datasets: Sequence[str], variants: Sequence[Mapping], analysis: Mapping):
    """Test accuracy vs epoch per dataset: mean over seeds with its bootstrap CI band, thin per-seed lines."""
    set_style()
    order = Order(epochs, datasets, variants)
    curves = stats.epoch_curves(epochs, analysis, "test_acc")
    finite = _finite_epochs(epochs)
    fig, axes = panels(len(order.datasets))
    for ax, dataset in zip(axes, order.datasets, strict=True):
        for variant in order.variants:
            colour = order.colours[variant]
            runs = finite[(finite["dataset"] == dataset) & (finite["variant"] == variant)]
            for _, run in runs.groupby("seed"):
                ax.plot(run["epoch"], 100 * run["test_acc"], color=colour, lw=0.5, alpha=0.35)
            ended = epochs[(epochs["dataset"] == dataset) & (epochs["variant"] == variant) & epochs["diverged"]]
            for seed in ended["seed"]:
                last = runs[runs["seed"] == seed].tail(1)
                ax.plot(last["epoch"], 100 * last["test_acc"], "x", color=colour, ms=5, mew=1.2)
            c = curves[(curves["dataset"] == dataset) & (curves["variant"] == variant)]
            ax.fill_between(c["epoch"], 100 * c["ci_low"], 100 * c["ci_high"], color=colour, alpha=0.2, lw=0)
            ax.plot(c["epoch"], 100 * c["mean"], color=colour, lw=1.6)
        ax.set_title(order.dataset_labels[dataset])
        epoch_axis(ax, epochs)
    axes[0].set_ylabel("Test accuracy (%)")
    legend_below(fig, order)
    return fig


def final_accuracy(runs: pd.DataFrame, reference: pd.DataFrame, datasets: Sequence[str], variants: Sequence[Mapping]):
    """Final test accuracy per seed (points) and its distribution (box) per variant, one panel per dataset; the
    backprop ``reference`` runs as a dashed line (mean) and band (range over seeds)."""
    set_style()
    order = Order(runs, datasets, variants)
    data = runs.assign(acc=100 * runs["final_test_acc"])
    fig, axes = panels(len(order.datasets), per=(max(PANEL[0], 0.75 * len(order.variants) + 0.8), PANEL[1] + 0.4))
    for ax, dataset in zip(axes, order.datasets, strict=True):
        d = data[data["dataset"] == dataset]
        kw = {"x": "variant", "y": "acc", "hue": "variant", "order": order.variants, "hue_order": order.variants,
              "palette": order.colours, "legend": False, "ax": ax}
        sns.boxplot(data=d, showfliers=False, width=0.6, saturation=1, boxprops={"alpha": 0.45}, linewidth=0.9, **kw)
        sns.stripplot(data=d, jitter=0.15, size=3.5, edgecolor="black", linewidth=0.4, **kw)
        ticks = []
        for variant in order.variants:
            diverged = int(d.loc[d["variant"] == variant, "diverged"].sum())
            ticks.append(order.labels[variant] + (f" ({diverged} div.)" if diverged else ""))
        bp = 100 * reference.loc[reference["dataset"] == dataset, "final_test_acc"].dropna()
        if len(bp):
            ax.axhspan(bp.min(), bp.max(), color="#7f7f7f", alpha=0.15, lw=0)
            ax.axhline(bp.mean(), color="#7f7f7f", ls="--", lw=1)
            ax.annotate("backprop", (1, bp.mean()), xycoords=("axes fraction", "data"), ha="right", va="bottom",
                        fontsize=6.5, color="#4d4d4d")
        ax.set_xticks(range(len(order.variants)), ticks, rotation=35, ha="right", rotation_mode="anchor")
        ax.set_xlabel("")
        ax.set_ylabel("")
        ax.set_title(order.dataset_labels[dataset])
    axes[0].set_ylabel("Final test accuracy (%)")
    return fig


def seed_spread(epochs: pd.DataFrame, datasets: Sequence[str], variants: Sequence[Mapping], analysis: Mapping):
    """Across-seed standard deviation of test accuracy at each epoch."""
    set_style()
    order = Order(epochs, datasets, variants)
    curves = stats.epoch_curves(epochs, analysis, "test_acc", ci=False)
    fig, axes = panels(len(order.datasets))
    for ax, dataset in zip(axes, order.datasets, strict=True):
        for variant in order.variants:
            c = curves[(curves["dataset"] == dataset) & (curves["variant"] == variant)]
            ax.plot(c["epoch"], 100 * c["std"], color=order.colours[variant], lw=1.4, marker="o", ms=2.5)
        ax.set_title(order.dataset_labels[dataset])
        ax.set_ylim(bottom=0)
        epoch_axis(ax, epochs)
    axes[0].set_ylabel("Across-seed s.d. of test acc. (pp)")
    legend_below(fig, order)
    return fig


def dt_distributions(dt: pd.DataFrame, datasets: Sequence[str], variants: Sequence[Mapping]):
    """Histogram of the dt values the runs used, one panel per variant (pooled over datasets, seeds, layers)."""
    set_style()
    order = Order(dt, datasets, variants)
    n = len(order.variants)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.35 * ncols + 0.3, 2.0 * nrows + 0.2), squeeze=False,
                             sharex=True, layout="constrained")
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    lo, hi = float(dt["dt"].min()), float(dt["dt"].max())
    pad = max(0.02, 0.05 * (hi - lo))
    bins = np.linspace(lo - pad, hi + pad, 41)
    for ax, variant in zip(axes.flat, order.variants, strict=False):
        x = dt.loc[dt["variant"] == variant, "dt"].to_numpy(float)
        ax.hist(x, bins=bins, weights=np.full(len(x), 1 / max(len(x), 1)), color=order.colours[variant],
                edgecolor="white", linewidth=0.3)
        moments = stats.describe_dt(x)
        text = f"mean {moments['mean']:.3f}\ns.d. {moments['std']:.3f}" + (
            f"\nskew {moments['skew']:.2f}" if np.isfinite(moments["skew"]) else "")
        ax.text(0.97, 0.95, text, transform=ax.transAxes, ha="right", va="top", fontsize=6.5,
                bbox={"boxstyle": "round,pad=0.25", "fc": "white", "ec": "0.8", "lw": 0.5})
        ax.set_title(order.labels[variant], fontsize=8.5)
        ax.set_xlabel("Δt")
        ax.xaxis.set_tick_params(labelbottom=True)
    for row in axes:
        row[0].set_ylabel("Fraction of neurons")
    return fig


def instability_counts(runs: pd.DataFrame, epochs: pd.DataFrame, datasets: Sequence[str], variants: Sequence[Mapping],
                       analysis: Mapping):
    """Runs with a collapse, a divergence, or classes never predicted at the end, per dataset and variant."""
    set_style()
    order = Order(runs, datasets, variants)
    a = stats.settings(analysis)
    measures = stats.run_measures(runs, epochs, a["collapse_drop"])
    events = {"collapsed": f"collapsed\n(drop > {100 * a['collapse_drop']:g} pp)", "diverged": "diverged",
              "dead_classes": "dead class\nat end"}
    fig, axes = panels(len(order.datasets), per=(PANEL[0] + 0.3, PANEL[1]))
    width = 0.8 / len(order.variants)
    for ax, dataset in zip(axes, order.datasets, strict=True):
        m = measures[measures["dataset"] == dataset]
        for j, variant in enumerate(order.variants):
            g = m[m["variant"] == variant]
            counts = [int(g[e].sum()) for e in events]
            xs = np.arange(len(events)) - 0.4 + width * (j + 0.5)
            ax.bar(xs, counts, width=width * 0.92, color=order.colours[variant])
            for x, c in zip(xs, counts, strict=True):
                if c:
                    ax.text(x, c, str(c), ha="center", va="bottom", fontsize=6.5)
        n_max = int(m.groupby("variant").size().max()) if len(m) else 1
        ax.set_ylim(0, n_max * 1.08)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xticks(range(len(events)), list(events.values()), fontsize=7)
        ax.set_title(order.dataset_labels[dataset])
        ax.grid(axis="x", visible=False)
    axes[0].set_ylabel("Runs")
    legend_below(fig, order)
    return fig


def free_residual(epochs: pd.DataFrame, datasets: Sequence[str], variants: Sequence[Mapping]):
    """Free-phase residual mean |s_T1 - s_(T1-1)| on the test set vs epoch: per-seed lines and their mean."""
    set_style()
    order = Order(epochs, datasets, variants)
    finite = _finite_epochs(epochs)
    fig, axes = panels(len(order.datasets))
    positive = finite.loc[finite["free_residual"] > 0, "free_residual"]
    for ax, dataset in zip(axes, order.datasets, strict=True):
        for variant in order.variants:
            colour = order.colours[variant]
            runs = finite[(finite["dataset"] == dataset) & (finite["variant"] == variant)]
            for _, run in runs.groupby("seed"):
                ax.plot(run["epoch"], run["free_residual"], color=colour, lw=0.5, alpha=0.35)
            mean = runs.groupby("epoch")["free_residual"].mean()
            ax.plot(mean.index, mean.to_numpy(), color=colour, lw=1.6)
        if len(positive) == len(finite) and len(finite):
            ax.set_yscale("log")
        elif len(positive):
            ax.set_yscale("symlog", linthresh=float(positive.min()))
        ax.set_title(order.dataset_labels[dataset])
        epoch_axis(ax, epochs)
    axes[0].set_ylabel("Free-phase residual (mean |Δs|)")
    legend_below(fig, order)
    return fig


def dead_units(epochs: pd.DataFrame, datasets: Sequence[str], variants: Sequence[Mapping]):
    """Over training, mean over seeds: output units with no EP update on the probe (solid) and those meeting the
    analytic criterion (dashed; top row); hidden units with no EP update (bottom row). Per dataset."""
    set_style()
    order = Order(epochs, datasets, variants)
    finite = _finite_epochs(epochs)
    out = f"dead_frac_l{len([c for c in epochs.columns if c.startswith('dead_frac_l')])}"
    n = len(order.datasets)
    fig, axes = plt.subplots(2, n, figsize=(min(PANEL[0] * n, max(PAGE_WIDTH, 2.3 * n)), 2 * PANEL[1]),
                             squeeze=False, sharex="col", layout="constrained")
    for col, dataset in enumerate(order.datasets):
        d = finite[finite["dataset"] == dataset]
        for variant in order.variants:
            mean = d[d["variant"] == variant].groupby("epoch")[[out, "out_dead_analytic_frac", "dead_frac_l1"]].mean()
            colour = order.colours[variant]
            axes[0][col].plot(mean.index, 100 * mean[out], color=colour, lw=1.4)
            axes[0][col].plot(mean.index, 100 * mean["out_dead_analytic_frac"], color=colour, lw=1, ls="--")
            axes[1][col].plot(mean.index, 100 * mean["dead_frac_l1"], color=colour, lw=1.4)
        axes[0][col].set_title(order.dataset_labels[dataset])
        epoch_axis(axes[1][col], epochs)
    axes[0][0].set_ylabel("Output units dead (%)")
    axes[1][0].set_ylabel("Hidden units dead (%)")
    legend_below(fig, order)
    return fig


def paired_forest(paired: pd.DataFrame, datasets: Sequence[str], variants: Sequence[Mapping]):
    """Forest plot of the paired effects (``paired_effects.paired_effects``): per dataset and variant against each
    baseline, the mean difference of final accuracy and the s.d. ratio with their CIs, coloured by verdict."""
    order = Order(pd.concat([paired, paired.assign(variant=paired["baseline"])]), datasets, variants)
    rank = {dataset: i for i, dataset in enumerate(order.datasets)}
    rows = paired.sort_values("dataset", key=lambda d: d.map(rank), kind="stable")
    lines = pd.DataFrame({
        "label": [f"{order.dataset_labels[r.dataset]} · {order.labels[r.variant]} vs {order.labels[r.baseline]}"
                  for r in rows.itertuples()],
        "difference": rows["accuracy_difference"], "difference_low": rows["accuracy_ci_low"],
        "difference_high": rows["accuracy_ci_high"], "difference_verdict": rows["accuracy_verdict"],
        "ratio": rows["spread_sd_ratio"], "ratio_low": rows["spread_ci_low"], "ratio_high": rows["spread_ci_high"],
        "ratio_verdict": rows["spread_verdict"]})
    fig = forest(lines, ["higher", "lower", "inconclusive", "untestable"])
    ratios = fig.axes[1].xaxis  # ratios as plain numbers at powers of 2 (matplotlib's labels of minor ticks overlap)
    ratios.set_major_locator(LogLocator(base=2))
    ratios.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ratios.set_minor_formatter(NullFormatter())
    return fig
