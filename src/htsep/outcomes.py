"""Outcomes of the mechanism sweeps' runs: whether (and how) each run broke, break rates with binomial CIs, and
variant-vs-reference tests of the stress sweep.

A run *broke* when it diverged (non-finite), collapsed (an epoch-to-epoch test-accuracy drop above
``collapse_drop``, as in ``htsep.stats``) or ended at chance level (finite, final test accuracy <= ``chance_acc``).
``landscape_tables`` and ``stress_tables`` write the tables of the landscape and stress rules.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from .files import write_table
from .stats import collapse_drops, holm

STRESS_COMPARE_COLUMNS = ["lr_multiplier", "beta", "variant", "reference", "n_broke", "n_runs", "n_broke_reference",
                          "n_runs_reference", "rate_difference", "acc_median_difference", "p"]


def binomial_ci(k: int, n: int, alpha: float) -> dict:
    """Rate k/n with its exact (Clopper-Pearson) and Wilson confidence intervals at level 1 - alpha."""
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
    """One row per sweep run (its summary.json and the metrics.csv beside it): sweep coordinates, accuracy, and
    whether (and how) it broke."""
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
    return pd.DataFrame(rows).astype({"diverged_epoch": "Int64"})


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


def stress_compare(runs: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Per (lr multiplier, beta) and variant: broken runs vs the reference's, Fisher's exact test (two-sided)."""
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
    return pd.DataFrame(rows, columns=STRESS_COMPARE_COLUMNS)


def landscape_tables(summary_paths: Sequence[str | Path], outputs: Mapping[str, str], params: Mapping) -> None:
    """Landscape tables: one row per run, and per dt mean x spread with break rates."""
    analysis = params["analysis"]
    runs = run_outcomes(summary_paths, analysis["collapse_drop"], params["chance_acc"])
    runs = runs.sort_values(["mean", "std", "seed"], ignore_index=True)
    summary = rates(runs, ["dataset", "dataset_label", "mean", "std"], analysis["alpha"])
    write_table(outputs["runs"], runs)
    write_table(outputs["runs_csv"], runs)
    write_table(outputs["table"], summary)


def stress_tables(summary_paths: Sequence[str | Path], outputs: Mapping[str, str], params: Mapping) -> None:
    """Stress tables: one row per run; per setting x variant with break rates; each variant against the reference
    (the first of ``stress.variants`` that ran) per setting, Holm-corrected over all settings."""
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
