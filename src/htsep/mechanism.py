"""Mechanism experiments: through what heterogeneous time steps could act on EP training, measured.

The fixed points of the relaxation do not depend on dt, so dt can only matter through the relaxation itself (how
close to a fixed point the network is after ``free_steps`` steps, and which fixed point it reaches) and through
what learning then does with it. Four experiments, each a function of this module called by one workflow rule
(``workflow/rules/mechanism.smk``):

- ``spectral_experiment``: the trained runs of the main grid (weights at each snapshot epoch and at the end),
  relaxed on a probe of test images for ``free_steps`` and for ``long_steps`` steps; at the state reached, the
  spectrum of the relaxation map's Jacobian (``htsep.dynamics.relaxation_spectrum``), with each run's own dt and
  with its dt swapped (HTS weights with uniform dt; uniform weights with the HTS dt of the same seed);
- ``relaxation_figure``: the per-epoch relaxation diagnostics of the grid (settle time, unconverged share,
  oscillation) over training;
- ``landscape_*``: short runs over a grid of dt mean x spread: final accuracy, its spread across seeds, breakage;
- ``stress_*``: uniform vs heterogeneous dt under larger learning rates and nudging strengths: where each breaks
  (divergence, collapse, or chance-level accuracy), with exact and Wilson binomial CIs.

``mechanism_macros`` turns the tables into ``paper/generated/mechanism.tex`` (numbers and direction words chosen by
the data) for ``paper/mechanism.tex``.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .config import ConfigError, canonical, deep_update, run_slice, variant_by_name
from .dynamics import ACTIVATION_DERIVATIVES, fixed_point_residual, relaxation_diagnostics, relaxation_spectrum
from .files import write_table, write_text
from .model import EPNetwork, phi_gradients
from .splits import as_tensors, dataset_label, load_split
from .timesteps import TimeStepSpecError, validate_spec

log = logging.getLogger(__name__)

LANDSCAPE_DIR = "results/mechanism/landscape"
STRESS_DIR = "results/mechanism/stress"
RELAX_MODES = ("T1", "long")
HIST_EDGES = np.round(np.linspace(-2.0, 2.0, 801), 6)  # eigenvalue histogram bins (width 0.005); outside: clipped


def fmt(x: float) -> str:
    """A number as it appears in folder names and labels: 0.30 -> '0.3', 1.0 -> '1'."""
    return f"{float(x):g}"


# ------------------------------------------------------------------------------------------ plans (for the DAG)


def _present_variants(config: Mapping, names: Sequence[str], key: str) -> list[str]:
    """The variants of ``names`` that the grid defines (others are left out with a warning, so that a grid without
    them still runs its other targets); ConfigError if none is left."""
    defined = [v["name"] for v in config["variants"]]
    missing = [n for n in names if n not in defined]
    if missing:
        log.warning("config key %s: %s are not in variants %s and are left out", key, missing, defined)
    present = [n for n in names if n in defined]
    if not present:
        raise ConfigError(f"config key {key}: none of {list(names)} is in variants {defined}")
    return present


def spectral_runs(config: Mapping) -> list[tuple[str, str, int]]:
    """(dataset, variant, seed) of every grid run the spectral experiment reads."""
    spec = config["mechanism"]["spectral"]
    variants = _present_variants(config, spec["variants"], "mechanism.spectral.variants")
    for dataset in spec["datasets"]:
        if dataset not in config["data"]:
            raise ConfigError(f"config key mechanism.spectral.datasets: dataset {dataset!r} is not configured in data")
    seeds = config["seeds"] if spec["seeds"] is None else spec["seeds"]
    return [(d, v, int(s)) for d in spec["datasets"] for v in variants for s in seeds]


def sweep_run(config: Mapping, sweep: Mapping, variant: Mapping, seed: int, tag: Mapping,
              lr_multiplier: float = 1.0, beta: float | None = None) -> dict:
    """The effective config of one run of a sweep: the grid's run config with the sweep's dataset subset,
    training overrides, epochs, scaled learning rates / beta, and ``tag`` (the sweep coordinates) as ``sweep``."""
    dataset = sweep["dataset"]
    if dataset not in config["data"]:
        raise ConfigError(f"config key mechanism: dataset {dataset!r} is not configured in data")
    unknown = sorted(set(sweep.get("training") or {}) - set(config["training"]))
    if unknown:
        raise ConfigError(f"config key mechanism training overrides: unknown training keys {unknown}")
    try:
        validate_spec(variant["dt"], where=f"mechanism variant {variant['name']}.dt")
    except TimeStepSpecError as err:
        raise ConfigError(f"config key {err}") from None
    run = run_slice(config, dataset, config["variants"][0]["name"], seed)
    training = deep_update(copy.deepcopy(config["training"]), sweep.get("training") or {})
    training |= {"epochs": sweep["epochs"], "snapshot_epochs": [],
                 "lr": [lr_multiplier * lr for lr in training["lr"]]}
    if beta is not None:
        training["beta"] = beta
    run["training"] = canonical(training)
    run["variant"] = canonical(dict(variant))
    run["dataset"] = canonical({**run["dataset"], "train_subset": sweep["train_subset"],
                                "test_subset": sweep["test_subset"]})
    run["sweep"] = canonical(dict(tag))
    return run


def landscape_variant(mean: float, std: float, landscape: Mapping) -> dict:
    """The dt variant of one landscape cell: constant for spread 0, else the landscape's clipped distribution."""
    if std == 0:
        dt = {"distribution": "constant", "value": float(mean)}
    else:
        dt = {"distribution": landscape["distribution"], "mean": float(mean), "std": float(std),
              "clip_min": landscape["clip_min"], "clip_max": landscape["clip_max"]}
    return {"name": f"mean{fmt(mean)}_std{fmt(std)}", "dt": dt}


def landscape_plan(config: Mapping) -> dict[str, list[tuple[str, dict]]]:
    """mean (as in the folder names) -> [(run folder, run config)]: one stacked training job per dt mean."""
    land = config["mechanism"]["landscape"]
    plan: dict[str, list[tuple[str, dict]]] = {}
    for mean in land["means"]:
        jobs = []
        for std in land["stds"]:
            variant = landscape_variant(mean, std, land)
            for seed in land["seeds"]:
                folder = f"{LANDSCAPE_DIR}/{land['dataset']}/{variant['name']}/seed{seed}"
                jobs.append((folder, sweep_run(config, land, variant, seed, {"name": "landscape", "mean": mean,
                                                                              "std": std})))
        plan[fmt(mean)] = jobs
    return plan


def stress_setting(lr_multiplier: float, beta: float) -> str:
    return f"lr{fmt(lr_multiplier)}_beta{fmt(beta)}"


def stress_plan(config: Mapping) -> dict[str, list[tuple[str, dict]]]:
    """lr multiplier -> [(run folder, run config)]: one job per multiplier (one stacked training per beta)."""
    stress = config["mechanism"]["stress"]
    variants = [variant_by_name(config, name)
                for name in _present_variants(config, stress["variants"], "mechanism.stress.variants")]
    plan: dict[str, list[tuple[str, dict]]] = {}
    for mult in stress["lr_multipliers"]:
        jobs = []
        for beta in stress["betas"]:
            for variant in variants:
                for seed in stress["seeds"]:
                    setting = stress_setting(mult, beta)
                    folder = f"{STRESS_DIR}/{stress['dataset']}/{setting}/{variant['name']}/seed{seed}"
                    tag = {"name": "stress", "lr_multiplier": mult, "beta": beta}
                    jobs.append((folder, sweep_run(config, stress, variant, seed, tag, mult, beta)))
        plan[fmt(mult)] = jobs
    return plan


# --------------------------------------------------------------------------------------------- sweep training


def _first_per_class(labels: torch.Tensor, n: int) -> torch.Tensor:
    keep = [torch.nonzero(labels == c).flatten()[:n] for c in labels.unique()]
    return torch.cat(keep).sort().values


def subset_split(split: dict, per_class: int | None = None, first: int | None = None) -> dict:
    """A prepared split cut to its first ``per_class`` images of each class or its first ``first`` images."""
    index = torch.arange(len(split["labels"]))
    if per_class is not None:
        index = _first_per_class(split["labels"], per_class)
    if first is not None:
        index = index[:first]
    provenance = {**split["provenance"], "mechanism_subset": {"per_class": per_class, "first": first},
                  "n": len(index)}
    return {"images": split["images"][index], "labels": split["labels"][index], "index": split["index"][index],
            "provenance": provenance}


def train_sweep(runs: Sequence[Mapping], folders: Sequence[str], data_paths: Mapping[str, str]) -> list[dict]:
    """Train a sweep job's runs: one stacked ``train_runs`` call per distinct training config, on the runs' data
    subset (all runs of a job share the dataset and subset)."""
    from .train import train_runs

    datasets = {json.dumps(run["dataset"], sort_keys=True) for run in runs}
    if len(datasets) != 1:
        raise ValueError("train_sweep: all runs of a job must share their dataset config")
    dataset = runs[0]["dataset"]
    groups: dict[str, list[int]] = {}
    for i, run in enumerate(runs):
        groups.setdefault(json.dumps(run["training"], sort_keys=True), []).append(i)
    summaries = []
    with tempfile.TemporaryDirectory(prefix="htsep-sweep-") as tmp:
        paths = {"train": Path(tmp) / "train.pt", "test": Path(tmp) / "test.pt"}
        torch.save(subset_split(load_split(data_paths["train"]), per_class=dataset.get("train_subset")),
                   paths["train"])
        torch.save(subset_split(load_split(data_paths["test"]), first=dataset.get("test_subset")), paths["test"])
        for members in groups.values():
            log.info("training %d runs with %s", len(members), runs[members[0]]["sweep"])
            summaries += train_runs([runs[i] for i in members], paths, [folders[i] for i in members])
    return summaries


# ------------------------------------------------------------------------------------------- run outcomes


def binomial_ci(k: int, n: int, alpha: float) -> dict:
    """Rate k/n with its exact (Clopper-Pearson) and Wilson confidence intervals at level 1 - alpha."""
    from scipy import stats as sps

    if n == 0:
        return {"rate": math.nan, "cp_low": math.nan, "cp_high": math.nan, "wilson_low": math.nan,
                "wilson_high": math.nan}
    test = sps.binomtest(int(k), int(n))
    cp, wilson = (test.proportion_ci(confidence_level=1 - alpha, method=m) for m in ("exact", "wilson"))
    return {"rate": k / n, "cp_low": cp.low, "cp_high": cp.high, "wilson_low": wilson.low,
            "wilson_high": wilson.high}


def _pooled_dt(summary: Mapping) -> tuple[float, float]:
    """Mean and s.d. of dt over all free neurons, from the per-layer stats in a run summary."""
    sizes = np.asarray(summary["config"]["model"]["sizes"][1:], dtype=float)
    means = np.array([s["mean"] for s in summary["dt_stats"]])
    stds = np.array([s["std"] for s in summary["dt_stats"]])
    mean = float((sizes * means).sum() / sizes.sum())
    second = float((sizes * (stds**2 + means**2)).sum() / sizes.sum())
    return mean, math.sqrt(max(second - mean**2, 0.0))


def run_outcomes(summary_paths: Sequence[str | Path], collapse_drop: float, chance_acc: float) -> pd.DataFrame:
    """One row per sweep run: sweep coordinates, accuracy, and whether (and how) it broke.

    broke = diverged (non-finite), collapsed (an epoch-to-epoch test-accuracy drop > ``collapse_drop``) or
    chance-level (finite, final test accuracy <= ``chance_acc``).
    """
    from .stats import collapse_drops

    rows = []
    for path in map(Path, summary_paths):
        summary = json.loads(path.read_text())
        metrics = pd.read_csv(path.parent / "metrics.csv")
        finite = metrics[~metrics["diverged"].astype(bool)]
        acc = finite["test_acc"].to_numpy(float)
        drops = collapse_drops(acc, collapse_drop)
        diverged = bool(summary["diverged"])
        final = summary["final_test_acc"]
        chance = (not diverged) and final is not None and final <= chance_acc
        dt_mean, dt_std = _pooled_dt(summary)
        last = finite.iloc[-1] if len(finite) else None
        row = {f"sweep_{k}" if k == "name" else k: v for k, v in summary["config"]["sweep"].items()}
        rows.append({
            **row,
            "dataset": summary["dataset"], "dataset_label": summary["dataset_label"], "variant": summary["variant"],
            "seed": summary["seed"], "dt_mean": dt_mean, "dt_std": dt_std,
            "final_test_acc": final if final is not None else math.nan,
            "best_test_acc": summary["best_test_acc"] if summary["best_test_acc"] is not None else math.nan,
            "epochs_completed": summary["epochs_completed"],
            "diverged": diverged, "diverged_epoch": summary["diverged_epoch"],
            "collapsed": len(drops) > 0, "max_drop": float(max((-np.diff(acc)).max(), 0.0)) if len(acc) > 1 else 0.0,
            "chance_level": bool(chance), "broke": diverged or len(drops) > 0 or bool(chance),
            **{k: (float(last[k]) if last is not None and k in last else math.nan)
               for k in ("free_residual", "relax_steps_to_tol", "relax_unconverged_frac", "relax_oscillation")},
        })
    frame = pd.DataFrame(rows).astype({"diverged_epoch": "Int64"})
    return frame


def rates(outcomes: pd.DataFrame, keys: Sequence[str], alpha: float) -> pd.DataFrame:
    """Per group of ``keys``: accuracy across seeds and the counts and rates (with CIs) of each way to break."""
    rows = []
    for key, group in outcomes.groupby(list(keys), sort=True):
        key = key if isinstance(key, tuple) else (key,)
        acc = group["final_test_acc"].to_numpy(float)
        finite = acc[np.isfinite(acc)]
        n, k = len(group), int(group["broke"].sum())
        rows.append({
            **dict(zip(keys, key, strict=True)),
            "n_runs": n,
            "acc_mean": float(finite.mean()) if len(finite) else math.nan,
            "acc_std": float(finite.std(ddof=1)) if len(finite) > 1 else math.nan,
            "acc_median": float(np.median(finite)) if len(finite) else math.nan,
            "dt_mean": float(group["dt_mean"].mean()), "dt_std": float(group["dt_std"].mean()),
            "n_diverged": int(group["diverged"].sum()), "n_collapsed": int(group["collapsed"].sum()),
            "n_chance": int(group["chance_level"].sum()), "n_broke": k,
            **{f"break_{name}": value for name, value in binomial_ci(k, n, alpha).items()},
            "relax_steps_to_tol": float(group["relax_steps_to_tol"].mean()),
            "relax_unconverged_frac": float(group["relax_unconverged_frac"].mean()),
        })
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------- landscape


def landscape_analysis(summary_paths: Sequence[str | Path], outputs: Mapping[str, str], params: Mapping) -> None:
    """Landscape tables (per run; per mean x spread) and heatmaps."""
    analysis = params["analysis"]
    runs = run_outcomes(summary_paths, analysis["collapse_drop"], params["chance_acc"])
    runs = runs.sort_values(["mean", "std", "seed"], ignore_index=True)
    summary = rates(runs, ["dataset", "dataset_label", "mean", "std"], analysis["alpha"])
    write_table(outputs["runs"], runs)
    write_table(outputs["runs_csv"], runs)
    write_table(outputs["table"], summary)
    landscape_figure(summary, params["landscape"], outputs["pdf"], outputs["png"])


def landscape_figure(summary: pd.DataFrame, landscape: Mapping, pdf, png) -> None:
    """Three heatmaps over dt mean (rows) x spread (columns): mean final accuracy, its s.d. across seeds, and the
    share of runs that broke."""
    from . import plots

    plots._style()
    import matplotlib.pyplot as plt

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
        ax.set_xticks(range(len(stds)), [fmt(s) for s in stds])
        ax.set_yticks(range(len(means)), [fmt(m) for m in means])
        ax.set_xlabel(r"$\Delta t$ spread (s.d.; 0 = uniform)")
        ax.set_ylabel(r"$\Delta t$ mean")
        ax.set_title(title)
        ax.grid(False)
    label = summary["dataset_label"].iloc[0] if len(summary) else ""
    fig.suptitle(f"{label}: {landscape['distribution']} dt clipped to [{fmt(landscape['clip_min'])}, "
                 f"{fmt(landscape['clip_max'])}], {landscape['epochs']} epochs, {len(landscape['seeds'])} seeds",
                 fontsize=9)
    plots.save(fig, pdf, png)


# ------------------------------------------------------------------------------------------------- stress


def stress_analysis(summary_paths: Sequence[str | Path], outputs: Mapping[str, str], params: Mapping) -> None:
    """Stress tables (per run; per setting x variant with break rates; variant vs reference per setting) and
    figure."""
    from .stats import holm

    analysis, stress = params["analysis"], params["stress"]
    runs = run_outcomes(summary_paths, analysis["collapse_drop"], params["chance_acc"])
    order = {name: i for i, name in enumerate(stress["variants"])}
    runs = runs.sort_values(["lr_multiplier", "beta", "variant", "seed"], key=lambda c: c.map(order)
                            if c.name == "variant" else c, ignore_index=True)
    summary = rates(runs, ["dataset", "dataset_label", "lr_multiplier", "beta", "variant"], analysis["alpha"])
    compare = stress_compare(runs, [v for v in stress["variants"] if v in set(runs["variant"])][0])
    compare["p_holm"] = holm(compare["p"].to_numpy(float)) if len(compare) else []
    write_table(outputs["runs"], runs)
    write_table(outputs["runs_csv"], runs)
    write_table(outputs["table"], summary)
    write_table(outputs["compare"], compare)
    stress_figure(runs, summary, params["variants"], stress, outputs["pdf"], outputs["png"])


def stress_compare(runs: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Per (lr multiplier, beta) and variant: broken runs vs the reference's, Fisher's exact test (two-sided)."""
    from scipy import stats as sps

    rows = []
    for (mult, beta), group in runs.groupby(["lr_multiplier", "beta"], sort=True):
        ref = group[group["variant"] == reference]
        for variant, other in group.groupby("variant", sort=False):
            if variant == reference:
                continue
            k1, n1, k0, n0 = int(other["broke"].sum()), len(other), int(ref["broke"].sum()), len(ref)
            p = sps.fisher_exact([[k1, n1 - k1], [k0, n0 - k0]]).pvalue if n1 and n0 else math.nan
            rows.append({"lr_multiplier": mult, "beta": beta, "variant": variant, "reference": reference,
                         "n_broke": k1, "n_runs": n1, "n_broke_reference": k0, "n_runs_reference": n0,
                         "rate_difference": (k1 / n1 - k0 / n0) if n1 and n0 else math.nan,
                         "acc_median_difference": float(other["final_test_acc"].median()
                                                        - ref["final_test_acc"].median()),
                         "p": float(p)})
    return pd.DataFrame(rows, columns=["lr_multiplier", "beta", "variant", "reference", "n_broke", "n_runs",
                                       "n_broke_reference", "n_runs_reference", "rate_difference",
                                       "acc_median_difference", "p"])


def _variant_style(names: Sequence[str], variants: Sequence[Mapping]):
    from . import plots

    specs = [v for v in variants if v["name"] in names] + [
        {"name": n, "dt": {"distribution": "unknown"}} for n in names if n not in {v["name"] for v in variants}]
    return plots.variant_labels(specs), plots.variant_colours(specs)


def stress_figure(runs: pd.DataFrame, summary: pd.DataFrame, variants: Sequence[Mapping], stress: Mapping,
                  pdf, png) -> None:
    """Per beta (columns): share of runs that broke (exact 95% CI) and final accuracy per seed, vs lr multiplier."""
    from matplotlib.lines import Line2D

    from . import plots

    plots._style()
    import matplotlib.pyplot as plt

    names = [v for v in stress["variants"] if v in set(runs["variant"])]
    labels, colours = _variant_style(names, variants)
    betas = sorted(summary["beta"].unique())
    mults = sorted(summary["lr_multiplier"].unique())
    fig, axes = plt.subplots(2, len(betas), figsize=(2.5 * len(betas) + 0.4, 4.6), squeeze=False, sharex=True,
                             sharey="row", layout="constrained")
    offsets = np.linspace(-0.12, 0.12, len(names)) if len(names) > 1 else [0.0]
    x_of = {m: i for i, m in enumerate(mults)}
    for col, beta in enumerate(betas):
        top, bottom = axes[0][col], axes[1][col]
        for offset, name in zip(offsets, names, strict=True):
            cells = summary[(summary["beta"] == beta) & (summary["variant"] == name)].sort_values("lr_multiplier")
            if cells.empty:
                continue
            x = np.array([x_of[m] for m in cells["lr_multiplier"]]) + offset
            rate = cells["break_rate"].to_numpy(float)
            err = np.vstack([rate - cells["break_cp_low"].to_numpy(float),
                             cells["break_cp_high"].to_numpy(float) - rate])
            top.errorbar(x, rate, yerr=err, color=colours[name], marker="o", ms=4, lw=1.3, capsize=2)
            seeds = runs[(runs["beta"] == beta) & (runs["variant"] == name)]
            sx = np.array([x_of[m] for m in seeds["lr_multiplier"]]) + offset
            acc = 100 * seeds["final_test_acc"].to_numpy(float)
            bottom.scatter(sx[np.isfinite(acc)], acc[np.isfinite(acc)], s=9, color=colours[name], alpha=0.6, lw=0)
            diverged = ~np.isfinite(acc)
            if diverged.any():
                bottom.scatter(sx[diverged], np.zeros(diverged.sum()), marker="x", s=14, color=colours[name])
            bottom.plot(x, 100 * cells["acc_median"].to_numpy(float), color=colours[name], lw=1.2)
        top.set_title(rf"$\beta={fmt(beta)}$")
        top.set_ylim(-0.05, 1.05)
        bottom.set_ylim(-3, 103)
        bottom.set_xticks(range(len(mults)), [f"×{fmt(m)}" for m in mults])
        bottom.set_xlabel("Learning-rate multiplier")
    axes[0][0].set_ylabel("Share of runs broken\n(exact 95% CI)")
    axes[1][0].set_ylabel("Final test accuracy (%)\n(× = diverged)")
    handles = [Line2D([], [], color=colours[n], marker="o", ms=4, lw=1.3, label=labels[n]) for n in names]
    label = summary["dataset_label"].iloc[0] if len(summary) else ""
    fig.suptitle(f"{label}: {stress['epochs']} epochs, {len(stress['seeds'])} seeds per cell; broken = diverged, "
                 f"collapsed or chance-level", fontsize=9)
    fig.legend(handles=handles, loc="outside lower center", ncols=len(names), frameon=False)
    plots.save(fig, pdf, png)


# ------------------------------------------------------------------------------------------------ spectral


def _network(state: Mapping, weights=None, biases=None, dt=None) -> EPNetwork:
    """A float64 network from a saved state, optionally with other weights/biases (a snapshot) or dt."""
    net = EPNetwork.from_state_dict(state)
    net.weights = [w.double() for w in (weights if weights is not None else state["weights"])]
    net.biases = [b.double() for b in (biases if biases is not None else state["biases"])]
    net.dt = [d.double() for d in (dt if dt is not None else state["dt"])]
    return net


def _is_uniform_dt(dt: Sequence[torch.Tensor]) -> bool:
    values = torch.cat([d.flatten() for d in dt])
    return bool((values == values[0]).all())


def _finite(net: EPNetwork) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in net.weights + net.biases)


def dt_conditions(own_dt, same_seed_hts: Mapping[str, Sequence[torch.Tensor]],
                  swap_uniform: Sequence[float], swap_hts: bool) -> list[tuple[str, str, list[torch.Tensor]]]:
    """(dt_source, dt_kind, dt tensors) for one run: its own dt, each ``swap_uniform`` constant other than its
    own, and (uniform runs, when ``swap_hts``) the dt of each HTS run of the same dataset and seed."""
    conditions = [("own", "own", list(own_dt))]
    uniform = _is_uniform_dt(own_dt)
    own_value = float(own_dt[0].flatten()[0]) if uniform else None
    for value in swap_uniform:
        if uniform and math.isclose(value, own_value, rel_tol=1e-6):
            continue
        conditions.append((f"uniform {fmt(value)}", "uniform", [torch.full_like(d, value) for d in own_dt]))
    if uniform and swap_hts:
        for name, dt in same_seed_hts.items():
            conditions.append((name, "hts", list(dt)))
    return conditions


def _probe(test_path: str | Path, normalize, size: int) -> torch.Tensor:
    x, _ = as_tensors(load_split(test_path), normalize)
    return x[:size].double()


@torch.no_grad()
def spectrum_rows(net: EPNetwork, x: torch.Tensor, steps: Mapping[str, int], tol: float):
    """Per relaxation depth (``steps``: mode -> number of free steps from zero): per-sample spectral measures,
    aggregate row and eigenvalue histograms of one network on probe ``x``."""
    samples, summaries, hists = [], [], []
    stacked = EPNetwork.stack([net])
    states, done = net.zero_states(x), 0
    for mode, n_steps in sorted(steps.items(), key=lambda kv: kv[1]):
        states = net.relax(x, n_steps - done, init=states)
        done = n_steps
        spectrum = relaxation_spectrum(net, x, states)
        eig = spectrum.eigenvalues
        rho = eig.abs().amax(-1)
        coupled = spectrum.coupled
        has = spectrum.n_coupled > 0
        c_abs = torch.nan_to_num(coupled.abs(), nan=-1.0).amax(-1)
        c_max = torch.nan_to_num(coupled, nan=-math.inf).amax(-1)
        c_min = torch.nan_to_num(coupled, nan=math.inf).amin(-1)
        nan = torch.full_like(rho, math.nan)
        u = torch.cat(phi_gradients(states, net.weights, net.drives(x)), -1)
        active = (ACTIVATION_DERIVATIVES[net.activation](u) > 0).double().mean(-1)
        residual = fixed_point_residual(net, x, states)
        frame = pd.DataFrame({
            "relax": mode, "steps": n_steps, "sample": np.arange(len(x)),
            "spectral_radius": rho.numpy(), "lambda_max": eig[..., -1].numpy(), "lambda_min": eig[..., 0].numpy(),
            "coupled_radius": torch.where(has, c_abs, nan).numpy(),
            "coupled_max": torch.where(has, c_max, nan).numpy(),
            "coupled_min": torch.where(has, c_min, nan).numpy(),
            "coupling_max": spectrum.coupling_max.numpy(),
            "n_coupled": spectrum.n_coupled.numpy(), "active_frac": active.numpy(), "residual": residual.numpy(),
        })
        diag = relaxation_diagnostics(stacked, x.unsqueeze(0), n_steps, tol)
        r = frame["spectral_radius"]
        summaries.append({
            "relax": mode, "steps": n_steps, "n_samples": len(x),
            "rho_median": float(r.median()), "rho_mean": float(r.mean()), "rho_q10": float(r.quantile(0.1)),
            "rho_q90": float(r.quantile(0.9)), "rho_max": float(r.max()),
            "frac_rho_ge_1": float((r >= 1).mean()),
            "frac_lambda_below_minus1": float((frame["lambda_min"] < -1).mean()),
            "lambda_min_min": float(frame["lambda_min"].min()), "lambda_max_max": float(frame["lambda_max"].max()),
            "coupled_radius_median": float(frame["coupled_radius"].median()),
            "coupled_max_median": float(frame["coupled_max"].median()),
            "coupled_max_mean": float(frame["coupled_max"].mean()),
            "coupled_max_q90": float(frame["coupled_max"].quantile(0.9)),
            "coupled_min_median": float(frame["coupled_min"].median()),
            "coupling_max_median": float(frame["coupling_max"].median()),
            "coupling_max_mean": float(frame["coupling_max"].mean()),
            "coupling_max_q90": float(frame["coupling_max"].quantile(0.9)),
            "frac_coupling_ge_1": float((frame["coupling_max"] >= 1).mean()),
            # H is bipartite (layers), so a top eigenvalue of 0 on the coupled units means no coupling among them:
            # J is then diagonal, every eigenvalue is 1 - dt_i.
            "frac_decoupled": float((frame["coupling_max"].fillna(0.0) <= 1e-12).mean()),
            "n_coupled_mean": float(frame["n_coupled"].mean()), "active_frac_mean": float(frame["active_frac"].mean()),
            "residual_median": float(frame["residual"].median()), "frac_fixed": float((frame["residual"] < tol).mean()),
            **{k: float(v[0]) for k, v in diag.items()},
        })
        for part, values in (("all", eig), ("coupled", coupled)):
            flat = values.flatten().numpy()
            flat = np.clip(flat[np.isfinite(flat)], HIST_EDGES[0], HIST_EDGES[-1])
            counts, _ = np.histogram(flat, HIST_EDGES)
            nonzero = np.flatnonzero(counts)
            hists.append(pd.DataFrame({"relax": mode, "part": part, "bin_low": HIST_EDGES[nonzero],
                                       "bin_high": HIST_EDGES[nonzero + 1], "count": counts[nonzero]}))
        samples.append(frame)
    return samples, summaries, hists


def spectral_experiment(models: Sequence[str | Path], test_data: Mapping[str, str | Path],
                        outputs: Mapping[str, str], params: Mapping) -> None:
    """Relaxation spectra of trained grid runs with their own and swapped dt; tables and figures."""
    spec = params["spectral"]
    torch.set_num_threads(params.get("threads", 1))
    loaded = [(Path(p), torch.load(p, map_location="cpu", weights_only=False)) for p in models]
    hts_dt: dict[tuple[str, int], dict[str, list[torch.Tensor]]] = {}
    for _, ckpt in loaded:
        run = ckpt["run"]
        if not _is_uniform_dt(ckpt["network"]["dt"]):
            key = (run["dataset"]["name"], run["seed"])
            hts_dt.setdefault(key, {})[run["variant"]["name"]] = ckpt["network"]["dt"]
    probes: dict[str, torch.Tensor] = {}
    sample_frames, summary_rows, hist_frames = [], [], []
    for path, ckpt in loaded:
        run, state = ckpt["run"], ckpt["network"]
        dataset, variant, seed = run["dataset"]["name"], run["variant"]["name"], run["seed"]
        if dataset not in probes:
            probes[dataset] = _probe(test_data[dataset], run["dataset"].get("normalize"), spec["probe_size"])
        x = probes[dataset]
        training = run["training"]
        steps = {"T1": training["free_steps"], "long": max(spec["long_steps"], training["free_steps"])}
        own_kind = "uniform" if _is_uniform_dt(state["dt"]) else "hts"
        weights_at = {int(e): (s["weights"], s["biases"]) for e, s in ckpt["snapshots"].items()}
        weights_at[int(ckpt["epoch"])] = (state["weights"], state["biases"])
        if spec.get("epochs") is not None:  # a subset of the saved epochs ("final": the last one)
            wanted = {int(ckpt["epoch"]) if e == "final" else int(e) for e in spec["epochs"]}
            weights_at = {e: w for e, w in weights_at.items() if e in wanted}
        conditions = dt_conditions(state["dt"], hts_dt.get((dataset, seed), {}), spec["swap_uniform"],
                                   spec["swap_hts"])
        keys = {"dataset": dataset, "dataset_label": dataset_label(dataset, run["dataset"]["split"]),
                "variant": variant, "variant_kind": own_kind, "seed": seed}
        for epoch in sorted(weights_at):
            weights, biases = weights_at[epoch]
            for source, kind, dt in conditions:
                net = _network(state, weights, biases, dt)
                if not _finite(net):
                    log.info("%s: epoch %d weights are not finite; skipped", path, epoch)
                    continue
                dt_all = torch.cat(net.dt)
                cond = {**keys, "epoch": epoch, "final": epoch == int(ckpt["epoch"]), "dt_source": source,
                        "dt_kind": kind, "dt_mean": float(dt_all.mean()), "dt_std": float(dt_all.std(unbiased=False))}
                samples, summaries, hists = spectrum_rows(net, x, steps, training["residual_tol"])
                sample_frames += [f.assign(**cond) for f in samples]
                summary_rows += [{**cond, **s} for s in summaries]
                hist_frames += [h.assign(**cond) for h in hists]
        log.info("%s/%s/seed%d: %d epochs x %d dt conditions", dataset, variant, seed, len(weights_at),
                 len(conditions))
    cond_columns = ["dataset", "dataset_label", "variant", "variant_kind", "seed", "epoch", "final", "dt_source",
                    "dt_kind", "dt_mean", "dt_std"]
    table = pd.DataFrame(summary_rows)
    table = table[cond_columns + [c for c in table.columns if c not in cond_columns]]
    order = ["dataset", "variant", "seed", "epoch", "dt_kind", "dt_source", "relax"]
    table = table.sort_values(order, ignore_index=True)
    samples = pd.concat(sample_frames, ignore_index=True)
    samples = samples[cond_columns + [c for c in samples.columns if c not in cond_columns]]
    hist = pd.concat(hist_frames, ignore_index=True)
    hist = hist[cond_columns + [c for c in hist.columns if c not in cond_columns]]
    write_table(outputs["table"], table)
    write_table(outputs["table_csv"], table)
    write_table(outputs["samples"], samples)
    write_table(outputs["hist"], hist)
    spectral_radius_figure(table, params, outputs["radius_pdf"], outputs["radius_png"])
    eigenvalue_figure(hist, params, outputs["moduli_pdf"], outputs["moduli_png"])


SOURCE_COLOURS = {"own": "black", "uniform": ["#1b9e77", "#7570b3", "#66a61e", "#666666"],
                  "hts": ["#d95f02", "#e7298a", "#a6761d", "#e6ab02"]}


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


def spectral_radius_figure(table: pd.DataFrame, params: Mapping, pdf, png) -> None:
    """Per dataset (two rows of two panels), at the state after T1 steps, per-run means over the probe:
    (a) the coupled units' slowest mode (largest eigenvalue of their block of J) and (b) the dt-free coupling gain
    (largest eigenvalue of H on the coupled units) vs epoch with the run's own dt; (c) the full spectral radius and
    (d) the slowest coupled mode of the final weights of each variant with its own and with swapped dt."""
    from matplotlib.lines import Line2D

    from . import plots

    plots._style()
    import matplotlib.pyplot as plt

    variants = params["variants"]
    names = [v for v in params["spectral"]["variants"] if v in set(table["variant"])]
    labels, colours = _variant_style(names, variants)
    styles = _source_styles(table, variants)
    datasets = [d for d in params["spectral"]["datasets"] if d in set(table["dataset"])]
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
            plots._epoch_axis(ax, own)
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
    plots.save(fig, pdf, png)


def eigenvalue_figure(hist: pd.DataFrame, params: Mapping, pdf, png) -> None:
    """Distribution of eigenvalue moduli |lambda| at the end of training (own dt, T1 state), pooled over seeds and
    probe samples: all free units (left) and the coupled units' modes only (right), per variant."""
    from matplotlib.lines import Line2D

    from . import plots

    plots._style()
    import matplotlib.pyplot as plt

    variants = params["variants"]
    names = [v for v in params["spectral"]["variants"] if v in set(hist["variant"])]
    labels, colours = _variant_style(names, variants)
    datasets = [d for d in params["spectral"]["datasets"] if d in set(hist["dataset"])]
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
    plots.save(fig, pdf, png)


# ----------------------------------------------------------------------------------------------- relaxation


RELAX_METRICS = (("relax_steps_to_tol", "Steps to settle\n(mean over probe)"),
                 ("relax_unconverged_frac", "Share unconverged\nafter T1 steps"),
                 ("relax_oscillation", "Oscillation\n(share of sign flips)"))


def relaxation_figure(epochs_path: str | Path, outputs: Mapping[str, str], params: Mapping) -> None:
    """Relaxation diagnostics of the grid vs epoch: rows = measure, columns = dataset; mean over seeds (thick)
    and each seed (thin), per variant."""
    from . import plots

    plots._style()
    import matplotlib.pyplot as plt

    epochs = pd.read_parquet(epochs_path)
    epochs = epochs[~epochs["diverged"].astype(bool)]
    order = plots.Order(epochs, params["datasets"], params["variants"])
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
            if column == "relax_steps_to_tol" and "free_steps" in params:
                ax.axhline(params["free_steps"] + 1, color="black", lw=0.7, ls=":")
                ax.annotate("not settled within T1", (0.02, params["free_steps"] + 1),
                            xycoords=("axes fraction", "data"), va="bottom", fontsize=6.5)
            if column == "relax_unconverged_frac":
                ax.set_ylim(-0.03, 1.03)
            if row == 0:
                ax.set_title(order.dataset_labels[dataset])
            if col == 0:
                ax.set_ylabel(ylabel)
            if row == len(RELAX_METRICS) - 1:
                plots._epoch_axis(ax, data)
    plots._legend(fig, order)
    plots.save(fig, outputs["pdf"], outputs["png"])


# --------------------------------------------------------------------------------------------------- paper


def _kind_median(frame: pd.DataFrame, column: str) -> float:
    return float(frame[column].median()) if len(frame) else math.nan


def _frame_mean(frame: pd.DataFrame, column: str) -> float:
    return float(frame[column].mean()) if len(frame) else math.nan


def _direction(a: float, b: float, rel: float = 1e-3) -> str:
    """'lower' / 'higher' / 'the same as' for a compared with b (equal within ``rel`` of b's magnitude)."""
    if not (np.isfinite(a) and np.isfinite(b)):
        return "not comparable with"
    if abs(a - b) <= rel * max(abs(b), 1e-12):
        return "the same as"
    return "lower than" if a < b else "higher than"


def mechanism_macros(inputs: Mapping[str, str], output: str | Path, params: Mapping) -> None:
    """Write ``paper/generated/mechanism.tex``: every number and claim of the Mechanism section, from the
    tables (direction words computed here)."""
    from .paper import num, pct, tex_escape
    from .plots import variant_labels

    lines = ["% Generated by htsep.mechanism.mechanism_macros from results/mechanism/*; do not edit."]

    def macro(name: str, value) -> None:
        lines.append(f"\\newcommand{{\\{name}}}{{{value}}}")

    variants = params["variants"]
    tex_labels = variant_labels(variants, tex=True)

    # --- spectral
    spectral = pd.read_parquet(inputs["spectral"])
    spec = params["spectral"]
    final = spectral[spectral["final"] & (spectral["relax"] == "T1")]
    own = final[final["dt_source"] == "own"]
    primary = spec["datasets"][0]
    p_own = own[own["dataset"] == primary]
    macro("MechProbeSize", spec["probe_size"])
    macro("MechLongSteps", spec["long_steps"])
    macro("MechSpectralDatasets", ", ".join(tex_escape(d) for d in sorted(set(spectral["dataset_label"]))))
    macro("MechSpectralPrimary", tex_escape(p_own["dataset_label"].iloc[0]) if len(p_own) else tex_escape(primary))
    macro("MechSpectralNRuns", spectral[["dataset", "variant", "seed"]].drop_duplicates().shape[0])
    epochs_seen = [str(e) for e in sorted(set(spectral["epoch"]))]
    macro("MechSpectralEpochs", ("epoch " if len(epochs_seen) == 1 else "epochs ") + (
        ", ".join(epochs_seen[:-1]) + " and " + epochs_seen[-1] if len(epochs_seen) > 1 else "".join(epochs_seen)))
    hts = p_own[p_own["variant_kind"] == "hts"]
    ref_name, matched_name = params["analysis"]["reference"], params["analysis"]["mean_matched"]
    groups = {"Ref": p_own[p_own["variant"] == ref_name], "Matched": p_own[p_own["variant"] == matched_name]}
    macro("MechRefLabel", tex_labels.get(ref_name, tex_escape(ref_name)))
    macro("MechMatchedLabel", tex_labels.get(matched_name, tex_escape(matched_name)))
    values: list[tuple[str, str, str]] = []  # (variant, measure, text) for \mechvalue
    for tag, column in (("Rho", "rho_median"), ("Slow", "coupled_max_mean"), ("Coupling", "coupling_max_mean"),
                        ("FracFixed", "frac_fixed"), ("Steps", "relax_steps_to_tol")):
        digits = 1 if tag == "Steps" else 3
        fmt_value = (lambda v, d=digits: pct(v, 1)) if tag == "FracFixed" else (lambda v, d=digits: num(v, d))
        macro(f"MechHTS{tag}", fmt_value(_kind_median(hts, column)))
        for group, frame in groups.items():
            macro(f"Mech{group}{tag}", fmt_value(_kind_median(frame, column)))
            macro(f"MechHTS{tag}Vs{group}", _direction(_kind_median(hts, column), _kind_median(frame, column)))
        for name in spec["variants"]:
            rows = p_own[p_own["variant"] == name]
            if len(rows):
                values.append((name, tag, fmt_value(_kind_median(rows, column))))
    for group, frame in groups.items():
        macro(f"MechN{group}Runs", frame["seed"].nunique())
    lines.append("% \\mechvalue{variant}{Rho|Slow|Coupling|FracFixed|Steps}: median over the primary dataset's runs "
                 "(own dt, end of training, state after T1 steps) of the per-run median spectral radius, mean slowest "
                 "coupled mode, mean coupling gain, share at a fixed point (%), mean settle steps.")
    lines.append(r"\newcommand{\mechvalue}[2]{\csname mech/#1/#2\endcsname}")
    for name, tag, text in values:
        lines.append(f"\\expandafter\\def\\csname mech/{name}/{tag}\\endcsname{{{text}}}")
    macro("MechNHTSRuns", hts[["variant", "seed"]].drop_duplicates().shape[0])
    macro("MechFracUnstable", pct(float((final["frac_rho_ge_1"] > 0).mean()) if len(final) else math.nan, 1))
    macro("MechMaxFracRhoGeOne", pct(final["frac_rho_ge_1"].max() if len(final) else math.nan, 1))
    macro("MechFracCouplingGeOne", pct(own["frac_coupling_ge_1"].mean() if len(own) else math.nan, 1))
    macro("MechFracDecoupled", pct(p_own["frac_decoupled"].median() if len(p_own) else math.nan, 1))
    macro("MechMinLambdaMin", num(spectral["lambda_min_min"].min() if len(spectral) else math.nan, 3))
    samples_min = spectral["coupled_min_median"].min() if len(spectral) else math.nan
    macro("MechCoupledMinMin", num(samples_min, 3))
    macro("MechNOscillatory", int((spectral["frac_lambda_below_minus1"] > 0).sum()) if len(spectral) else 0)
    macro("MechNConditions", len(spectral))

    # swaps at the end of training (T1 state): HTS weights (pooled) with each uniform dt; each uniform variant's
    # weights with the dt of the HTS runs of the same seed (pooled over HTS variants)
    p_final = final[final["dataset"] == primary]
    swap_sentences = []
    cases = [("heterogeneous-$\\Delta t$ runs", p_final[p_final["variant_kind"] == "hts"], source,
              f"uniform $\\Delta t={source.split()[1]}$", [source])
             for source in sorted({s for s in p_final["dt_source"] if s.startswith("uniform ")})]
    hts_sources = sorted({s for s in p_final.loc[p_final["dt_kind"] == "hts", "dt_source"]})
    uniform_weights = set(p_final.loc[p_final["variant_kind"] == "uniform", "variant"])
    for name in [n for n in spec["variants"] if n in uniform_weights]:
        cases.append((f"{tex_labels.get(name, tex_escape(name))} runs", p_final[p_final["variant"] == name], None,
                      "the $\\Delta t$ of the heterogeneous runs of the same seed", hts_sources))
    for whose, weights, _, what, sources in cases:
        base = weights[weights["dt_source"] == "own"]
        swapped = weights[weights["dt_source"].isin(sources)]
        pairs = base.merge(swapped, on=["variant", "seed"], suffixes=("_own", "_swap"))
        if pairs.empty:
            continue
        a, b = pairs["coupled_max_mean_own"].median(), pairs["coupled_max_mean_swap"].median()
        ra, rb = pairs["rho_median_own"].median(), pairs["rho_median_swap"].median()
        sa, sb = pairs["relax_steps_to_tol_own"].mean(), pairs["relax_steps_to_tol_swap"].mean()
        fa, fb = pairs["frac_fixed_own"].median(), pairs["frac_fixed_swap"].median()
        n_runs = base[["variant", "seed"]].drop_duplicates().shape[0]
        change = (f"left the slowest coupled mode at {num(a, 3)}" if num(a, 3) == num(b, 3) else
                  f"{'lowered' if b < a else 'raised'} the slowest coupled mode from {num(a, 3)} to {num(b, 3)}")
        swap_sentences.append(
            f"Giving the final weights of the {n_runs} {whose} {what} {change} (median spectral radius {num(ra, 3)} "
            f"to {num(rb, 3)}; mean settle time {num(sa, 1)} to {num(sb, 1)} steps; share of probe images at a fixed "
            f"point after $T_1$ steps {pct(fa, 1)}\\% to {pct(fb, 1)}\\%).")
    macro("MechSwapText", " ".join(swap_sentences) if swap_sentences else "No dt swaps were evaluated.")

    # --- relaxation over training (grid epochs table)
    epochs = pd.read_parquet(inputs["epochs"])
    epochs = epochs[~epochs["diverged"].astype(bool)]
    last = epochs[epochs["epoch"] == epochs.groupby(["dataset", "variant", "seed"])["epoch"].transform("max")]
    last_p = last[last["dataset"] == primary] if primary in set(last["dataset"]) else last
    hts_names = {name for name, kind in zip(p_own["variant"], p_own["variant_kind"], strict=True) if kind == "hts"}
    frames = {"HTS": last_p[last_p["variant"].isin(hts_names)], "Ref": last_p[last_p["variant"] == ref_name],
              "Matched": last_p[last_p["variant"] == matched_name]}
    for tag, frame in frames.items():
        macro(f"MechLast{tag}SettleSteps", num(_frame_mean(frame, "relax_steps_to_tol"), 1))
        macro(f"MechLast{tag}Unconverged", pct(_frame_mean(frame, "relax_unconverged_frac"), 1))
        macro(f"MechLast{tag}Oscillation", num(100 * _frame_mean(frame, "relax_oscillation"), 3))
    for tag in ("Ref", "Matched"):
        macro(f"MechLastSettleVs{tag}", _direction(_frame_mean(frames["HTS"], "relax_steps_to_tol"),
                                                   _frame_mean(frames[tag], "relax_steps_to_tol")))

    # --- landscape
    land = pd.read_csv(inputs["landscape"])
    lcfg = params["landscape"]
    macro("MechLandscapeDataset", tex_escape(land["dataset_label"].iloc[0]) if len(land) else "--")
    macro("MechLandscapeMeans", ", ".join(fmt(m) for m in lcfg["means"]))
    macro("MechLandscapeStds", ", ".join(fmt(s) for s in lcfg["stds"]))
    macro("MechLandscapeNSeeds", len(lcfg["seeds"]))
    macro("MechLandscapeEpochs", lcfg["epochs"])
    macro("MechLandscapeSubset", "all" if lcfg["train_subset"] is None else lcfg["train_subset"])
    macro("MechLandscapeDistribution", lcfg["distribution"])
    macro("MechLandscapeClip", f"$[{fmt(lcfg['clip_min'])}, {fmt(lcfg['clip_max'])}]$")
    macro("MechLandscapeNRuns", int(land["n_runs"].sum()) if len(land) else 0)
    macro("MechLandscapeNBroke", int(land["n_broke"].sum()) if len(land) else 0)
    finite = land[np.isfinite(land["acc_mean"])]
    if len(finite):
        best = finite.loc[finite["acc_mean"].idxmax()]
        worst = finite.loc[finite["acc_mean"].idxmin()]
        macro("MechLandscapeBest", f"mean ${fmt(best['mean'])}$, spread ${fmt(best['std'])}$ "
                                   f"({pct(best['acc_mean'])}\\%)")
        macro("MechLandscapeWorst", f"mean ${fmt(worst['mean'])}$, spread ${fmt(worst['std'])}$ "
                                    f"({pct(worst['acc_mean'])}\\%)")
    else:
        macro("MechLandscapeBest", "--")
        macro("MechLandscapeWorst", "--")
    gains, sentences = [], []
    for mean, group in land.groupby("mean"):
        base = group[group["std"] == 0]
        spread = group[group["std"] > 0]
        if base.empty or spread.empty:
            continue
        b = float(base["acc_mean"].iloc[0])
        top = spread.loc[spread["acc_mean"].idxmax()] if spread["acc_mean"].notna().any() else None
        if top is not None and np.isfinite(b):
            gains.append((mean, float(top["acc_mean"]) - b, top["std"]))
    if gains:
        better = [g for g in gains if g[1] > 0]
        sentences.append(f"At {len(better)} of {len(gains)} dt means, some spread gave a higher mean final accuracy "
                         f"than uniform $\\Delta t$ at the same mean; the largest change was "
                         f"{num(100 * max(gains, key=lambda g: abs(g[1]))[1], 2)} percentage points (mean "
                         f"${fmt(max(gains, key=lambda g: abs(g[1]))[0])}$).")
    broke = land[land["n_broke"] > 0]
    if len(broke):
        cells = ", ".join(f"mean ${fmt(r['mean'])}$/spread ${fmt(r['std'])}$ ({int(r['n_broke'])}/{int(r['n_runs'])})"
                          for _, r in broke.iterrows())
        sentences.append(f"Runs broke in {len(broke)} of {len(land)} cells: {cells}.")
    else:
        sentences.append("No landscape run broke (diverged, collapsed or ended at chance level).")
    macro("MechLandscapeText", " ".join(sentences))

    # --- stress
    stress = pd.read_csv(inputs["stress"])
    compare = pd.read_csv(inputs["stress_compare"])
    scfg = params["stress"]
    stress_variants = [v for v in scfg["variants"] if v in set(stress["variant"])]
    ref = stress_variants[0] if stress_variants else scfg["variants"][0]
    macro("MechStressDataset", tex_escape(stress["dataset_label"].iloc[0]) if len(stress) else "--")
    macro("MechStressReference", tex_labels.get(ref, tex_escape(ref)))
    macro("MechStressOthers", ", ".join(tex_labels.get(v, tex_escape(v)) for v in stress_variants[1:]))
    macro("MechStressLrMultipliers", ", ".join(f"$\\times{fmt(m)}$" for m in scfg["lr_multipliers"]))
    macro("MechStressBetas", ", ".join(f"${fmt(b)}$" for b in scfg["betas"]))
    macro("MechStressNSeeds", len(scfg["seeds"]))
    macro("MechStressEpochs", scfg["epochs"])
    macro("MechStressNSettings", len(scfg["lr_multipliers"]) * len(scfg["betas"]))
    macro("MechChanceAcc", pct(params["chance_acc"], 0))
    macro("MechAlpha", fmt(params["analysis"]["alpha"]))
    stress_sentences = []
    for name in stress_variants:
        rows = stress[stress["variant"] == name]
        k, n = int(rows["n_broke"].sum()), int(rows["n_runs"].sum())
        stress_sentences.append(f"{tex_labels.get(name, tex_escape(name))}: {k} of {n} runs broke")
    pooled = "; ".join(stress_sentences) + "." if stress_sentences else ""
    onset = []
    for name in stress_variants:
        parts = []
        for beta in sorted(set(stress["beta"])):
            rows = stress[(stress["variant"] == name) & (stress["beta"] == beta)].sort_values("lr_multiplier")
            broken = rows[rows["break_rate"] >= 0.5]
            parts.append(f"$\\times{fmt(broken['lr_multiplier'].iloc[0])}$" if len(broken) else "none")
        onset.append(f"{tex_labels.get(name, tex_escape(name))}: " + ", ".join(parts))
    macro("MechStressPooled", pooled)
    macro("MechStressOnset", "; ".join(onset) + "." if onset else "")
    alpha = params["analysis"]["alpha"]
    significant = compare[compare["p_holm"] < alpha] if len(compare) else compare
    macro("MechStressNCompared", len(compare))
    macro("MechStressNSignificant", len(significant))
    if len(significant):
        parts = [f"$\\times{fmt(r['lr_multiplier'])}$, $\\beta={fmt(r['beta'])}$ "
                 f"({tex_labels.get(r['variant'], tex_escape(r['variant']))} {int(r['n_broke'])}/{int(r['n_runs'])} vs "
                 f"{int(r['n_broke_reference'])}/{int(r['n_runs_reference'])})" for _, r in significant.iterrows()]
        macro("MechStressSignificantText", "The settings with a significant difference were " + "; ".join(parts) + ".")
    else:
        macro("MechStressSignificantText", "No setting showed a significant difference in the share of broken runs.")
    write_text(output, "\n".join(lines) + "\n")

