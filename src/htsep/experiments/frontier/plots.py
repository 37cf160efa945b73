"""The stability frontier's figure, in the style of ``htsep.report.style``: failure probability against the stress level
per dt variant (``htsep.experiments.frontier.stats``), how the failed runs failed, and each variant's critical level."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from ...outcomes import FAILURE_CRITERIA
from ...paths import number
from ...report.style import set_style, variant_colours, variant_labels, variant_specs
from .plan import sweep_variants

KIND_LABELS = {"diverged": "diverged", "chance": "chance level", "never_predicted": "class never predicted",
               "collapse": "collapse"}
KIND_HATCHES = {"diverged": "xx", "chance": "..", "never_predicted": "", "collapse": "//"}


def frontier_figure(cells: pd.DataFrame, curves: pd.DataFrame, critical: pd.DataFrame, frontier: Mapping,
                    variants: Sequence[Mapping]):
    """One column per (dataset, axis). Top: share of failed runs per level (exact 95% CI) and the fitted curve
    with its bootstrap band; middle: how the failed runs failed; bottom: critical levels with CIs."""
    set_style()
    names = sweep_variants(frontier)
    specs = variant_specs(names, variants)
    style = {"labels": variant_labels(specs), "colours": variant_colours(specs)}
    panels = sorted(set(zip(cells["dataset"], cells["axis"], strict=True))) if len(cells) else []
    fig, axes = plt.subplots(3, max(len(panels), 1), figsize=(4.6 * max(len(panels), 1) + 1.2, 8.0), squeeze=False,
                             height_ratios=[2.2, 1.4, 1.4], layout="constrained")
    for col, (dataset, axis) in enumerate(panels):
        own = cells[(cells["dataset"] == dataset) & (cells["axis"] == axis)]
        levels = np.array(sorted(set(own["level"])), float)
        present = [n for n in names if (own["variant"] == n).any()]
        step = np.diff(np.log(levels)).min() if len(levels) > 1 else np.log(1.5)  # the finest log spacing
        _rates_and_kinds(axes[0][col], axes[1][col], own, curves[(curves["dataset"] == dataset)
                                                                 & (curves["axis"] == axis)], present, step, style)
        _critical_levels(axes[2][col], critical[(critical["dataset"] == dataset) & (critical["axis"] == axis)],
                         present, levels, np.exp(step), style)
        seeds = sorted({int(own["n_runs"].min()), int(own["n_runs"].max())})
        axes[0][col].set_title(f"{own['dataset_label'].iloc[0]}: {axis} axis ({'-'.join(map(str, seeds))} seeds "
                               "per cell)", fontsize=9)
        for ax in axes[:, col]:
            ax.set_xscale("log")
            ax.set_xticks(levels, [f"×{number(lv)}" if frontier["axes"][axis]["mode"] == "scale" else number(lv)
                                   for lv in levels])
            ax.minorticks_off()
            ax.set_xlim(levels[0] / np.exp(step) ** 0.6, levels[-1] * np.exp(step) ** 0.6)
        axes[2][col].set_xlabel(f"{frontier['axes'][axis]['key']} level")
    axes[0][0].set_ylabel("Share of runs failed\n(exact 95% CI; fit and\nbootstrap band)")
    axes[1][0].set_ylabel("Failed runs by kind\n(first to hold)")
    axes[2][0].set_ylabel("Critical level\n(50% failed; 95% CI)")
    handles = [Line2D([], [], color=style["colours"][n], marker="o", ms=4, lw=1.4, label=style["labels"][n])
               for n in names]
    handles += [plt.Rectangle((0, 0), 1, 1, facecolor="0.6", hatch=KIND_HATCHES[k], edgecolor="white",
                              label=KIND_LABELS[k]) for k in frontier["failure"]["criteria"]]
    fig.legend(handles=handles, loc="outside lower center", ncols=2 if len(panels) < 2 else 4, frameon=False,
               fontsize=7)
    return fig


def _rates_and_kinds(top, middle, cells: pd.DataFrame, curves: pd.DataFrame, present: Sequence[str], step: float,
                     style: Mapping) -> None:
    """Top: each variant's failure rate per level (exact CI, dodged) and fitted curve; middle: failed runs by kind."""
    ratio = np.exp(step)
    spread = np.linspace(-0.25, 0.25, len(present)) if len(present) > 1 else [0.0]
    half = 0.4 * step / max(len(present), 1)  # half-width of a kind bar, in log units
    for offset, name in zip(spread, present, strict=True):
        colour = style["colours"][name]
        rows = cells[cells["variant"] == name].sort_values("level")
        x = rows["level"].to_numpy(float) * ratio ** (offset / 2)
        rate = rows["break_rate"].to_numpy(float)
        err = np.vstack([rate - rows["break_cp_low"].to_numpy(float), rows["break_cp_high"].to_numpy(float) - rate])
        top.errorbar(x, rate, yerr=err, color=colour, marker="o", ms=4, lw=0, elinewidth=1, capsize=2)
        curve = curves[curves["variant"] == name]
        if len(curve):
            top.plot(curve["level"], curve["p_fail"], color=colour, lw=1.4)
            top.fill_between(curve["level"], curve["p_low"], curve["p_high"], color=colour, alpha=0.15, lw=0)
        bottom_stack = np.zeros(len(rows))
        for kind in FAILURE_CRITERIA:
            column = f"n_kind_{kind}"
            if column not in rows:
                continue
            share = rows[column].to_numpy(float) / rows["n_runs"].to_numpy(float)
            centre = np.log(rows["level"].to_numpy(float)) + offset * step
            middle.bar(np.exp(centre - half), share, bottom=bottom_stack, align="edge",
                       width=np.exp(centre + half) - np.exp(centre - half), color=colour, alpha=0.75,
                       hatch=KIND_HATCHES[kind], edgecolor="white", lw=0.3)
            bottom_stack += share
    top.set_ylim(-0.05, 1.05)
    top.axhline(0.5, color="0.6", lw=0.6, ls=":")
    middle.set_ylim(0, 1.05)


def _critical_levels(ax, critical: pd.DataFrame, present: Sequence[str], levels: np.ndarray, ratio: float,
                     style: Mapping) -> None:
    """Each variant's critical level with its CI (a bar for separated brackets, an arrow when outside the axis)
    and its text as the tick label."""
    for i, name in enumerate(present):
        row = critical[critical["variant"] == name]
        if row.empty:
            continue
        row, y, colour = row.iloc[0], len(present) - 1 - i, style["colours"][name]
        if np.isfinite(row.get("bracket_low", np.nan)):  # separated: the levels the rate jumps between
            ax.plot([row["bracket_low"], row["bracket_high"]], [y, y], color=colour, lw=3, alpha=0.4)
        if np.isfinite(row["critical_level"]):
            lo, hi = row["ci_low"], row["ci_high"]
            xerr = None
            if np.isfinite(lo) and np.isfinite(hi):
                lo, hi = max(lo, levels[0]), min(hi, levels[-1])
                xerr = [[row["critical_level"] - lo], [hi - row["critical_level"]]]
            ax.errorbar([row["critical_level"]], [y], xerr=xerr, color=colour, marker="o", ms=5, capsize=3)
        elif row["status"] in ("censored above", "censored below"):
            edge = levels[-1] if row["status"] == "censored above" else levels[0]
            beyond = edge * ratio**0.5 if row["status"] == "censored above" else edge / ratio**0.5
            ax.annotate("", xy=(beyond, y), xytext=(edge, y), arrowprops={"arrowstyle": "->", "color": colour})
    texts = dict(zip(critical["variant"], critical["text"], strict=True))
    ax.set_yticks(range(len(present)), [f"{style['labels'][n]}\n{textwrap.fill(texts.get(n, ''), 34)}"
                                        for n in reversed(present)], fontsize=6)
    ax.set_ylim(-0.6, len(present) - 0.4)
