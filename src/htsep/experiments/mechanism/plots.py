"""The mechanism experiments' figures, in the style of ``htsep.report.style``: relaxation spectra of the trained runs
(``htsep.experiments.mechanism.spectra``), relaxation over training and the dt landscape (``htsep.outcomes``).

Each plotting function takes its tables and config parts as keyword arguments and returns the figure (see
``htsep.report.figures``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from ...paths import number
from ...report.style import Order, epoch_axis, legend_below, set_style, variant_colours, variant_labels, variant_specs

SOURCE_COLOURS = {"own": "black", "uniform": ["#1b9e77", "#7570b3", "#66a61e", "#666666"],
                  "hts": ["#d95f02", "#e7298a", "#a6761d", "#e6ab02"]}  # dt sources, apart from the variants' colours
RELAX_METRICS = (("relax_steps_to_tol", "Steps to settle\n(mean over probe)"),
                 ("relax_unconverged_frac", "Share unconverged\nafter T1 steps"),
                 ("relax_oscillation", "Oscillation\n(share of sign flips)"))


def _variant_style(names: Sequence[str], variants: Sequence[Mapping]) -> tuple[dict[str, str], dict[str, str]]:
    """(label, colour) per variant of ``names``, as in every figure."""
    specs = variant_specs(names, variants)
    return variant_labels(specs), variant_colours(specs)


def landscape_figure(summary: pd.DataFrame, landscape: Mapping):
    """Three heatmaps over dt mean (rows) x spread (columns): mean final accuracy, its s.d. across seeds, and the
    share of runs that broke (``summary``: the landscape table; ``landscape``: its config)."""
    set_style()
    means = sorted(summary["mean"].unique())
    stds = sorted(summary["std"].unique())
    cell = summary.set_index(["mean", "std"])
    panels = [
        ("acc_mean", "Final test accuracy (%), mean", "viridis", lambda v: f"{100 * v:.1f}", 100),
        ("acc_std", "Across-seed s.d. (pp)", "magma_r", lambda v: f"{100 * v:.2f}", 100),
        ("break_rate", "Runs that broke", "Reds", None, 1),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(3.0 * 3 + 0.6, 0.45 * len(means) + 1.5), layout="constrained")
    for ax, (column, title, cmap, text, scale) in zip(axes, panels, strict=True):
        grid = np.array([[cell.loc[(m, s), column] if (m, s) in cell.index else np.nan for s in stds]
                         for m in means], dtype=float) * scale
        finite = grid[np.isfinite(grid)]
        vmin, vmax = (0, 1) if column == "break_rate" else ((finite.min(), finite.max()) if len(finite) else (0, 1))
        if vmax == vmin:
            vmax = vmin + 1e-9
        image = ax.imshow(grid, origin="lower", aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax)
        fig.colorbar(image, ax=ax, shrink=0.85)
        for i, m in enumerate(means):
            for j, s in enumerate(stds):
                if (m, s) not in cell.index:
                    continue
                row = cell.loc[(m, s)]
                if column == "break_rate":
                    label = f"{int(row['n_broke'])}/{int(row['n_runs'])}"
                else:
                    label = "--" if not np.isfinite(grid[i, j]) else text(grid[i, j] / scale)
                value = grid[i, j]
                dark = np.isfinite(value) and (value - vmin) / (vmax - vmin) > 0.55
                dark = dark if cmap != "viridis" else not dark
                ax.text(j, i, label, ha="center", va="center", fontsize=7, color="white" if dark else "black")
        ax.set_xticks(range(len(stds)), [number(s) for s in stds])
        ax.set_yticks(range(len(means)), [number(m) for m in means])
        ax.set_xlabel(r"$\Delta t$ spread (s.d.; 0 = uniform)")
        ax.set_ylabel(r"$\Delta t$ mean")
        ax.set_title(title)
        ax.grid(False)
    label = summary["dataset_label"].iloc[0] if len(summary) else ""
    fig.suptitle(f"{label}: {landscape['distribution']} dt clipped to [{number(landscape['clip_min'])}, "
                 f"{number(landscape['clip_max'])}], {landscape['epochs']} epochs, {len(landscape['seeds'])} seeds",
                 fontsize=9)
    return fig


def _source_styles(table: pd.DataFrame, variants: Sequence[Mapping]):
    """Label, colour and marker per dt source (own; uniform constants; HTS runs' dt), in a palette of its own so
    that it is not confused with the weights variants' colours."""
    labels, _ = _variant_style(sorted(set(table["variant"])), variants)
    styles = {"own": ("Δt: own", SOURCE_COLOURS["own"], "o")}
    uniform = sorted({s for s in table["dt_source"] if s.startswith("uniform ")}, key=lambda s: float(s.split()[1]))
    for i, source in enumerate(uniform):
        colours = SOURCE_COLOURS["uniform"]
        styles[source] = (f"Δt: uniform {source.split()[1]}", colours[i % len(colours)], "s")
    for i, source in enumerate(sorted(set(table["dt_source"]) - set(uniform) - {"own"})):
        colours = SOURCE_COLOURS["hts"]
        styles[source] = (f"Δt: {labels.get(source, source)}, same seed", colours[i % len(colours)], "^")
    return styles


def spectral_radius_figure(table: pd.DataFrame, spectral: Mapping, variants: Sequence[Mapping]):
    """Per dataset (two rows of two panels), at the state after T1 steps, per-run means over the probe:
    (a) the coupled units' slowest mode (largest eigenvalue of their block of J) and (b) the dt-free coupling gain
    (largest eigenvalue of H on the coupled units) vs epoch with the run's own dt; (c) the full spectral radius and
    (d) the slowest coupled mode of the final weights of each variant with its own and with swapped dt."""
    set_style()
    names = [v for v in spectral["variants"] if v in set(table["variant"])]
    labels, colours = _variant_style(names, variants)
    styles = _source_styles(table, variants)
    datasets = [d for d in spectral["datasets"] if d in set(table["dataset"])]
    fig, axes = plt.subplots(2 * len(datasets), 2, figsize=(8.6, 5.4 * len(datasets) + 0.9), squeeze=False,
                             layout="constrained")
    t1 = table[table["relax"] == "T1"]
    for index, dataset in enumerate(datasets):
        data = t1[t1["dataset"] == dataset]
        label = data["dataset_label"].iloc[0]
        own = data[data["dt_source"] == "own"]
        for col, column, ylabel, title in (
                (0, "coupled_max_mean", "Slowest coupled mode of J", "own Δt: slowest mode"),
                (1, "coupling_max_mean", "Largest eigenvalue of H\non the coupled units", "coupling gain (Δt-free)")):
            ax = axes[2 * index][col]
            for name in names:
                runs = own[own["variant"] == name]
                for _, seed_rows in runs.groupby("seed"):
                    seed_rows = seed_rows.sort_values("epoch")
                    ax.plot(seed_rows["epoch"], seed_rows[column], color=colours[name], lw=0.5, alpha=0.35)
                mean = runs.groupby("epoch")[column].mean()
                ax.plot(mean.index, mean.to_numpy(), color=colours[name], lw=1.8, marker="o", ms=3)
            if col == 1:
                ax.axhline(1.0, color="black", lw=0.7, ls=":")
            epoch_axis(ax, own)
            if own["epoch"].nunique() == 1:
                ax.set_xticks(sorted(own["epoch"].unique()))
            ax.set_ylabel(ylabel)
            ax.set_title(f"{label}: {title}")
        final = data[data["final"]]
        for col, column, what in ((0, "rho_mean", "spectral radius"), (1, "coupled_max_mean", "slowest mode")):
            ax = axes[2 * index + 1][col]
            sources = [s for s in styles if s in set(final["dt_source"])]
            width = 0.8 / max(len(sources), 1)
            for i, name in enumerate(names):
                for j, source in enumerate(sources):
                    values = final[(final["variant"] == name) & (final["dt_source"] == source)][column]
                    if values.empty:
                        continue
                    _, colour, marker = styles[source]
                    x = i - 0.4 + width * (j + 0.5)
                    jitter = np.linspace(-width * 0.25, width * 0.25, len(values)) if len(values) > 1 else [0.0]
                    ax.scatter(x + np.asarray(jitter), values, s=10, color=colour, marker=marker, alpha=0.7, lw=0)
                    ax.hlines(values.median(), x - width * 0.4, x + width * 0.4, color=colour, lw=1.5)
            ax.set_xticks(range(len(names)), [labels[n].replace(" ", "\n", 1) for n in names], fontsize=7)
            for tick, name in zip(ax.get_xticklabels(), names, strict=True):
                tick.set_color(colours[name])
            ax.set_xlim(-0.5, len(names) - 0.5)
            ax.set_ylabel(what[0].upper() + what[1:] + " of J\n(mean over probe)")
            ax.set_xlabel("Final weights of")
            ax.set_title(f"{label}: own vs swapped Δt")
    handles = [Line2D([], [], color=colours[n], lw=1.8, label=labels[n]) for n in names]
    handles += [Line2D([], [], color=c, marker=m, lw=0, label=lab) for s, (lab, c, m) in styles.items()
                if s in set(table["dt_source"])]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 3), frameon=False)
    return fig


def eigenvalue_moduli_figure(hist: pd.DataFrame, spectral: Mapping, variants: Sequence[Mapping]):
    """Distribution of eigenvalue moduli |lambda| at the end of training (own dt, T1 state), pooled over seeds and
    probe samples: all free units (left) and the coupled units' modes only (right), per variant."""
    set_style()
    names = [v for v in spectral["variants"] if v in set(hist["variant"])]
    labels, colours = _variant_style(names, variants)
    datasets = [d for d in spectral["datasets"] if d in set(hist["dataset"])]
    data = hist[hist["final"] & (hist["dt_source"] == "own") & (hist["relax"] == "T1")]
    edges = np.round(np.linspace(0, 2, 81), 6)  # |lambda| bins of width 0.025
    fig, axes = plt.subplots(len(datasets), 2, figsize=(8.0, 2.7 * len(datasets) + 0.6), squeeze=False,
                             layout="constrained")
    for row, dataset in enumerate(datasets):
        sub = data[data["dataset"] == dataset]
        label = sub["dataset_label"].iloc[0] if len(sub) else dataset
        for col, part in enumerate(("all", "coupled")):
            ax = axes[row][col]
            low, top = 2.0, 0.0
            for name in names:
                rows = sub[(sub["variant"] == name) & (sub["part"] == part)]
                if rows.empty:
                    continue
                centre = (rows["bin_low"].to_numpy() + rows["bin_high"].to_numpy()) / 2
                counts, _ = np.histogram(np.abs(centre), edges, weights=rows["count"].to_numpy(float))
                share = counts / counts.sum()
                moduli = np.abs(centre[rows["count"].to_numpy() > 0])
                low, top = min(low, float(moduli.min())), max(top, float(moduli.max()))
                ax.step(edges[:-1], share, where="post", color=colours[name], lw=1.3)
            ax.axvline(1.0, color="black", lw=0.8, ls="--")
            ax.set_yscale("log")
            ax.set_xlim(max(0.0, min(low, 1.0) - 0.05), max(1.05, min(2.0, top + 0.05)))
            ax.set_xlabel(r"$|\lambda|$ of the relaxation Jacobian")
            ax.set_ylabel("Share of eigenvalues")
            what = "all free units" if part == "all" else "coupled units (σ' > 0) only"
            ax.set_title(f"{label}: {what}")
    handles = [Line2D([], [], color=colours[n], lw=1.5, label=labels[n]) for n in names]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 5), frameon=False)
    return fig


def relaxation_figure(epochs: pd.DataFrame, datasets: Sequence[str], variants: Sequence[Mapping], free_steps: int):
    """Relaxation diagnostics of the grid vs epoch: rows = measure, columns = dataset; mean over seeds (thick)
    and each seed (thin), per variant."""
    set_style()
    epochs = epochs[~epochs["diverged"].astype(bool)]
    order = Order(epochs, datasets, variants)
    fig, axes = plt.subplots(len(RELAX_METRICS), len(order.datasets),
                             figsize=(3.3 * len(order.datasets) + 0.3, 2.0 * len(RELAX_METRICS) + 0.7),
                             squeeze=False, sharex="col", layout="constrained")
    for col, dataset in enumerate(order.datasets):
        data = epochs[epochs["dataset"] == dataset]
        for row, (column, ylabel) in enumerate(RELAX_METRICS):
            ax = axes[row][col]
            for name in order.variants:
                runs = data[data["variant"] == name]
                for _, seed_rows in runs.groupby("seed"):
                    ax.plot(seed_rows["epoch"], seed_rows[column], color=order.colours[name], lw=0.4, alpha=0.3)
                mean = runs.groupby("epoch")[column].mean()
                ax.plot(mean.index, mean.to_numpy(), color=order.colours[name], lw=1.6)
            if column == "relax_steps_to_tol":
                ax.axhline(free_steps + 1, color="black", lw=0.7, ls=":")
                ax.annotate("not settled within T1", (0.02, free_steps + 1),
                            xycoords=("axes fraction", "data"), va="bottom", fontsize=6.5)
            if column == "relax_unconverged_frac":
                ax.set_ylim(-0.03, 1.03)
            if row == 0:
                ax.set_title(order.dataset_labels[dataset])
            if col == 0:
                ax.set_ylabel(ylabel)
            if row == len(RELAX_METRICS) - 1:
                epoch_axis(ax, data)
    legend_below(fig, order)
    return fig
