"""Outcomes of sweep runs (the dt landscape, the stability frontier): whether, how and from when each run broke,
and break rates with binomial CIs.

A run *broke* when one of the failure criteria of its sweep holds: it diverged (non-finite), ended at chance level
(finite, final test accuracy <= ``chance_acc``), ended with a class it never predicts, or collapsed (an epoch-to-epoch
test-accuracy drop above ``collapse_drop``, as in ``htsep.experiments.grid.stats``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from .files import read_run, write_table
from .records import config_json

FAILURE_CRITERIA = ("diverged", "chance", "never_predicted", "collapse")  # what onsets knows
# Collapses are strict: a drop counts when it exceeds collapse_drop by more than float round-off of k/N accuracies.
COLLAPSE_TOLERANCE = 1e-9

def binomial_ci(k: int, n: int, alpha: float) -> dict:
    """Rate k/n with its exact (Clopper-Pearson) and Wilson confidence intervals at level 1 - alpha."""
    if n == 0:
        return {"rate": math.nan, "cp_low": math.nan, "cp_high": math.nan, "wilson_low": math.nan,
                "wilson_high": math.nan}
    test = sps.binomtest(int(k), int(n))
    cp, wilson = (test.proportion_ci(confidence_level=1 - alpha, method=m) for m in ("exact", "wilson"))
    return {"rate": k / n, "cp_low": cp.low, "cp_high": cp.high, "wilson_low": wilson.low,
            "wilson_high": wilson.high}


def accuracy_drops(test_acc: Sequence[float]) -> np.ndarray:
    """Epoch-to-epoch drops (positive: accuracy fell) of the finite part of a test-accuracy curve."""
    acc = np.asarray(test_acc, dtype=float)
    return -np.diff(acc[np.isfinite(acc)])


def is_collapse(drops: np.ndarray, collapse_drop: float) -> np.ndarray:
    """Which of ``drops`` are collapses: larger than ``collapse_drop`` (beyond round-off)."""
    return drops > collapse_drop + COLLAPSE_TOLERANCE


def max_drop(test_acc: Sequence[float]) -> float:
    """The largest epoch-to-epoch drop of a curve's finite part (0 if it never fell; NaN below two finite epochs)."""
    drops = accuracy_drops(test_acc)
    return float(max(drops.max(), 0.0)) if len(drops) else math.nan


def pooled_dt(sizes: Sequence[int], means: Sequence[float], stds: Sequence[float]) -> tuple[float, float]:
    """Mean and s.d. of dt over all free neurons from each layer's size, dt mean and dt s.d."""
    sizes, means, stds = (np.asarray(x, dtype=float) for x in (sizes, means, stds))
    mean = float((sizes * means).sum() / sizes.sum())
    second = float((sizes * (stds**2 + means**2)).sum() / sizes.sum())
    return mean, math.sqrt(max(second - mean**2, 0.0))


def onsets(metrics: pd.DataFrame, summary: Mapping, failure: Mapping) -> dict[str, float]:
    """Epoch at which each failure criterion of ``failure`` starts to hold for one run (NaN: it does not hold).

    ``diverged``: the first non-finite epoch; ``chance``: the first epoch from which test accuracy stays at or below
    ``chance_acc`` to the end; ``never_predicted``: the first epoch from which some class stays unpredicted to the
    end; ``collapse``: the epoch after the first epoch-to-epoch drop above ``collapse_drop``.
    """
    finite = metrics[~metrics["diverged"].astype(bool)]
    epochs, acc = finite["epoch"].to_numpy(int), finite["test_acc"].to_numpy(float)
    diverged = bool(summary["diverged"])

    def stays(holds: np.ndarray) -> float:
        """First epoch from which ``holds`` is true to the end (runs that diverged never 'end' in a state)."""
        if diverged or not len(holds) or not holds[-1]:
            return math.nan
        return float(epochs[len(holds) - np.argmin(holds[::-1]) if not holds.all() else 0])

    out = {}
    for criterion in failure["criteria"]:
        if criterion == "diverged":
            out[criterion] = float(summary["diverged_epoch"]) if diverged else math.nan
        elif criterion == "chance":
            out[criterion] = stays(acc <= failure["chance_acc"])
        elif criterion == "never_predicted":
            out[criterion] = stays(finite["classes_never_predicted"].to_numpy(float) > 0)
        elif criterion == "collapse":
            collapses = np.flatnonzero(is_collapse(accuracy_drops(acc), failure["collapse_drop"]))
            out[criterion] = float(epochs[collapses[0] + 1]) if len(collapses) else math.nan
    return out


def run_outcomes(summary_paths: Sequence[str | Path], failure: Mapping, keys: Sequence[str] = ()) -> pd.DataFrame:
    """One row per sweep run (its summary.json and the metrics.csv beside it): sweep coordinates, accuracy, and
    whether it failed by ``failure`` (``criteria``: which of diverged, chance, never_predicted, collapse count,
    with ``chance_acc`` and ``collapse_drop``), each criterion's onset epoch (``onset_<criterion>``), how it failed
    (``failure_kind``: the criterion that held first, ties in the order of ``criteria``) and from when
    (``failure_epoch``). Without runs: no row, with the columns a shard of ``keys`` needs."""
    rows = []
    for path in map(Path, summary_paths):
        summary, metrics = read_run(path)
        finite = metrics[~metrics["diverged"].astype(bool)]
        acc = finite["test_acc"].to_numpy(float)
        final = summary["final_test_acc"]
        dt_mean, dt_std = pooled_dt(summary["config"]["model"]["sizes"][1:], [s["mean"] for s in summary["dt_stats"]],
                                    [s["std"] for s in summary["dt_stats"]])
        last = finite.iloc[-1] if len(finite) else None
        onset = onsets(metrics, summary, failure)
        held = [c for c in failure["criteria"] if np.isfinite(onset[c])]
        kind = min(held, key=lambda c: onset[c]) if held else None
        row = {f"sweep_{k}" if k == "name" else k: v for k, v in summary["config"].get("sweep", {}).items()}
        rows.append({
            **row,
            "protocol": summary["protocol"], "dataset": summary["dataset"], "dataset_label": summary["dataset_label"],
            "variant": summary["variant"], "seed": summary["seed"], "dt_mean": dt_mean, "dt_std": dt_std,
            "final_test_acc": final if final is not None else math.nan,
            "best_test_acc": summary["best_test_acc"] if summary["best_test_acc"] is not None else math.nan,
            "epochs_completed": summary["epochs_completed"],
            "diverged": bool(summary["diverged"]), "diverged_epoch": summary["diverged_epoch"],
            "max_drop": max_drop(acc),
            "classes_never_predicted": float(last["classes_never_predicted"]) if last is not None else math.nan,
            **{f"onset_{criterion}": epoch for criterion, epoch in onset.items()},
            "broke": kind is not None, "failure_kind": kind,
            "failure_epoch": onset[kind] if kind is not None else math.nan,
            **{k: (float(last[k]) if last is not None and k in last else math.nan)
               for k in ("free_residual", "relax_steps_to_tol", "relax_unconverged_frac", "relax_oscillation",
                         "out_dead_analytic_frac")},
            "config": config_json(summary["config"]),
            "code_fingerprint": summary.get("code_fingerprint"), "relaxation_kernel": summary.get("relaxation_kernel"),
            "wall_seconds": summary["wall_seconds"],
        })
    if not rows:  # e.g. a campaign whose runs every record already holds
        return pd.DataFrame(columns=list(dict.fromkeys([*keys, "protocol", "dataset", "variant", "seed",
                                                        "final_test_acc", "broke", "config", "code_fingerprint",
                                                        "relaxation_kernel"])))
    return pd.DataFrame(rows).astype({"diverged_epoch": "Int64"})


def rates(outcomes: pd.DataFrame, keys: Sequence[str], alpha: float) -> pd.DataFrame:
    """Per group of ``keys``: accuracy across seeds, the break rate (with CIs), and per failure criterion the runs
    where it holds (``n_<criterion>``) and those it broke first (``n_kind_<criterion>``)."""
    criteria = [c.removeprefix("onset_") for c in outcomes.columns if c.startswith("onset_")]
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
            **{f"n_{c}": int(np.isfinite(group[f"onset_{c}"].to_numpy(float)).sum()) for c in criteria},
            **{f"n_kind_{c}": int((group["failure_kind"] == c).sum()) for c in criteria},
            "failure_epoch_median": float(group["failure_epoch"].median()) if k else math.nan,
            "n_broke": k,
            **{f"break_{name}": value for name, value in binomial_ci(k, n, alpha).items()},
            "relax_steps_to_tol": float(group["relax_steps_to_tol"].mean()),
            "relax_unconverged_frac": float(group["relax_unconverged_frac"].mean()),
        })
    return pd.DataFrame(rows)


def write_outcomes(summary_paths: Sequence[str | Path], output: str | Path, failure: Mapping, keys: Sequence[str]
                   ) -> None:
    """``run_outcomes`` as a shard table keyed by ``keys`` (a frontier, sensitivity or confirmatory shard)."""
    write_table(output, run_outcomes(summary_paths, failure, keys))
