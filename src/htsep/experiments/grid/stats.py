"""Stability and performance of the grid: measures per run, per (protocol, dataset, variant), and tests.

Per run (``run_measures``): final/best test accuracy, collapse events (an epoch-to-epoch test-accuracy drop larger
than ``collapse_drop``), whether the run ended with classes it never predicts, divergence and its epoch, the
free-phase residual (final and mean over epochs) and the total variation of the test-accuracy curve.

Per (protocol, dataset, variant) (``summarize``; the backprop reference is protocol and variant ``backprop``):
mean, s.d. (ddof=1), median, IQR and a seeded bootstrap CI of the mean of final and best accuracy across seeds;
across-seed s.d. of test accuracy per epoch averaged over epochs; counts and rates of collapses, dead-class
endings, divergences and unstable runs (collapsed or diverged). ``best`` accuracy is chosen on the test set: it is
descriptive (post hoc) and no test uses it.

Tests (``compare``), per protocol, each variant against the uniform baselines that were trained (``comparisons``),
on final test accuracy: Brown-Forsythe (Levene with the median as centre) for the spread across seeds,
Mann-Whitney U with Cliff's delta, Welch's t with Cohen's d, and Fisher's exact test on unstable-run counts.
p-values are Holm corrected within each family: every protocol is its own family, split further by
``holm_family``. Degenerate groups give NaN p and a ``note``, never an error. These unpaired tests are the paper's
secondary statistics; its main ones pair the arms by seed (``paired_effects``). ``backprop_gaps``: EP's reference
variant minus backprop, paired by seed, per (protocol, dataset).
"""

from __future__ import annotations

import math
import warnings
import zlib
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from ...config import BACKPROP, schema_defaults
from ...files import read_table, write_table
from ...outcomes import accuracy_drops, is_collapse, max_drop
from ...paired import holm

RUN = ["protocol", "dataset", "variant", "seed"]
GROUP = ["protocol", "dataset", "dataset_label", "variant"]
TESTS = ("brown_forsythe", "mann_whitney", "welch_t", "fisher_unstable")
STATS_COLUMNS = ["protocol", "dataset", "dataset_label", "variant", "baseline", "test", "statistic", "p", "p_holm",
                 "effect_size", "effect_name", "n_variant", "n_baseline", "note"]
GAP_COLUMNS = ["protocol", "dataset", "dataset_label", "variant", "n_pairs", "ep_mean", "backprop_mean", "gap_mean",
               "gap_std", "gap_median", "gap_iqr", "gap_ci_low", "gap_ci_high"]
HOLM_FAMILIES = {"test": ["protocol", "test"], "dataset_test": ["protocol", "dataset", "test"], "all": ["protocol"]}


def settings(analysis: Mapping | None) -> dict:
    """The analysis config with the schema's defaults filled in."""
    return {**schema_defaults("analysis"), **(analysis or {})}


# --------------------------------------------------------------------------------------------------- per run


def total_variation(test_acc: Sequence[float]) -> float:
    """sum_e |acc_e - acc_{e-1}| over the finite part of a curve (NaN when it has no finite point)."""
    acc = np.asarray(test_acc, dtype=float)
    acc = acc[np.isfinite(acc)]
    return float(np.abs(np.diff(acc)).sum()) if len(acc) else math.nan


def run_measures(runs: pd.DataFrame, epochs: pd.DataFrame, collapse_drop: float) -> pd.DataFrame:
    """One row per run: the runs table's keys and accuracies plus collapse, divergence, residual and TV measures."""
    finite = epochs[~epochs["diverged"].astype(bool)].sort_values(RUN + ["epoch"])
    curves = {key: frame for key, frame in finite.groupby(RUN, sort=False)}
    rows = []
    for run in runs.itertuples(index=False):
        curve = curves.get((run.protocol, run.dataset, run.variant, run.seed))
        acc = curve["test_acc"].to_numpy(float) if curve is not None else np.empty(0)
        residual = curve["free_residual"].to_numpy(float) if curve is not None and "free_residual" in curve \
            else np.empty(0)  # backprop runs relax nothing
        n_collapses = int(is_collapse(accuracy_drops(acc), collapse_drop).sum())
        tv = total_variation(acc)
        diverged = bool(run.diverged)
        never = curve["classes_never_predicted"].iloc[-1] if curve is not None and len(curve) else 0
        dead = 0 if pd.isna(never) else int(never)  # NaN: the last epoch diverged
        rows.append({
            "protocol": run.protocol, "dataset": run.dataset, "dataset_label": run.dataset_label,
            "variant": run.variant, "seed": run.seed,
            "final_test_acc": run.final_test_acc, "best_test_acc": run.best_test_acc,
            "final_train_acc": run.final_train_acc,
            "n_epochs_finite": len(acc),
            "n_collapse_events": n_collapses,
            "max_drop": max_drop(acc),
            "collapsed": n_collapses > 0,
            "classes_never_predicted_final": dead if not diverged else pd.NA,
            "dead_classes": (not diverged) and dead > 0,
            "diverged": diverged,
            "diverged_epoch": run.diverged_epoch,
            "unstable": n_collapses > 0 or diverged,
            "residual_final": float(residual[-1]) if len(residual) else math.nan,
            "residual_mean": float(residual.mean()) if len(residual) else math.nan,
            "tv": tv,
            "tv_excess": tv - abs(acc[-1] - acc[0]) if len(acc) else math.nan,
            "wall_seconds": run.wall_seconds,
        })
    out = pd.DataFrame(rows)
    return out.astype({"diverged_epoch": "Int64", "classes_never_predicted_final": "Int64"})


def describe_dt(dt: np.ndarray) -> dict[str, float]:
    """Mean, s.d. (ddof=0), skewness (NaN for a constant dt), min and max of the dt values a variant used."""
    skew = float(sps.skew(dt)) if np.ptp(dt) > 0 else math.nan
    return {"mean": float(dt.mean()), "std": float(dt.std()), "skew": skew, "min": float(dt.min()),
            "max": float(dt.max())}


# ------------------------------------------------------------------------------------------------- per group


def _rng(seed: int, *key) -> np.random.Generator:
    """A generator seeded by ``seed`` and a stable hash of ``key`` (independent of the order groups are visited)."""
    return np.random.default_rng([seed, zlib.crc32("/".join(map(str, key)).encode())])


def bootstrap_ci(values: Iterable[float], analysis: Mapping, *key) -> tuple[float, float]:
    """Bootstrap CI of the mean of the finite ``values`` (NaN for fewer than two; a point for constant data)."""
    a = settings(analysis)
    x = np.asarray(list(values), dtype=float)
    x = x[np.isfinite(x)]
    if len(x) < 2:
        return math.nan, math.nan
    if np.ptp(x) == 0:
        return float(x[0]), float(x[0])
    res = sps.bootstrap((x,), np.mean, n_resamples=int(a["bootstrap"]), confidence_level=a["ci_level"],
                        method=a["bootstrap_method"], rng=_rng(a["bootstrap_seed"], *key))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def describe(values: Iterable[float], analysis: Mapping, prefix: str, *key) -> dict:
    """mean, sd (ddof=1), median, IQR and bootstrap CI of the finite values, keyed ``{prefix}_{stat}``."""
    x = np.asarray(list(values), dtype=float)
    x = x[np.isfinite(x)]
    low, high = bootstrap_ci(x, analysis, *key, prefix)
    return {
        f"{prefix}_mean": float(x.mean()) if len(x) else math.nan,
        f"{prefix}_std": float(x.std(ddof=1)) if len(x) > 1 else math.nan,
        f"{prefix}_median": float(np.median(x)) if len(x) else math.nan,
        f"{prefix}_iqr": float(sps.iqr(x)) if len(x) else math.nan,
        f"{prefix}_ci_low": low,
        f"{prefix}_ci_high": high,
    }


def epoch_curves(epochs: pd.DataFrame, analysis: Mapping, column: str = "test_acc", ci: bool = True) -> pd.DataFrame:
    """Per (protocol, dataset, variant, epoch) across seeds: n, mean, std (ddof=1; the across-seed spread), CI of
    the mean."""
    finite = epochs[~epochs["diverged"].astype(bool) & np.isfinite(epochs[column].astype(float))]
    rows = []
    for (protocol, dataset, label, variant, epoch), frame in finite.groupby(GROUP + ["epoch"], sort=True):
        x = frame[column].to_numpy(float)
        low, high = (bootstrap_ci(x, analysis, protocol, dataset, variant, column, epoch) if ci
                     else (math.nan, math.nan))
        rows.append({"protocol": protocol, "dataset": dataset, "dataset_label": label, "variant": variant,
                     "epoch": int(epoch),
                     "n": len(x), "mean": x.mean(), "std": x.std(ddof=1) if len(x) > 1 else math.nan,
                     "ci_low": low, "ci_high": high})
    columns = GROUP + ["epoch", "n", "mean", "std", "ci_low", "ci_high"]
    return pd.DataFrame(rows, columns=columns)


def summarize(measures: pd.DataFrame, epochs: pd.DataFrame, analysis: Mapping) -> pd.DataFrame:
    """One row per (protocol, dataset, variant): accuracy statistics across seeds, instability counts and rates."""
    spread = epoch_curves(epochs, analysis, ci=False)
    rows = []
    for (protocol, dataset, label, variant), g in measures.groupby(GROUP, sort=True):
        s = spread[(spread["protocol"] == protocol) & (spread["dataset"] == dataset) & (spread["variant"] == variant)]
        n = len(g)
        diverged_epochs = sorted(int(e) for e in g["diverged_epoch"].dropna())
        row = {"protocol": protocol, "dataset": dataset, "dataset_label": label, "variant": variant, "n_runs": n,
               "n_finite": int((~g["diverged"]).sum())}
        row |= describe(g["final_test_acc"], analysis, "final_acc", protocol, dataset, variant)
        row |= describe(g["best_test_acc"], analysis, "best_acc", protocol, dataset, variant)
        row |= {
            "final_train_acc_mean": g["final_train_acc"].mean(),
            "seed_std_mean": s["std"].mean(),
            "seed_std_max": s["std"].max(),
            "n_collapse_events": int(g["n_collapse_events"].sum()),
            "n_collapsed": int(g["collapsed"].sum()),
            "collapse_rate": g["collapsed"].mean(),
            "max_drop": g["max_drop"].max(),
            "n_dead_classes": int(g["dead_classes"].sum()),
            "dead_class_rate": g["dead_classes"].mean(),
            "n_diverged": int(g["diverged"].sum()),
            "divergence_rate": g["diverged"].mean(),
            "diverged_epochs": ";".join(map(str, diverged_epochs)),
            "first_diverged_epoch": diverged_epochs[0] if diverged_epochs else pd.NA,
            "n_unstable": int(g["unstable"].sum()),
            "unstable_rate": g["unstable"].mean(),
            "residual_final_mean": g["residual_final"].mean(),
            "residual_mean_mean": g["residual_mean"].mean(),
            "tv_mean": g["tv"].mean(),
            "tv_std": g["tv"].std(ddof=1),
            "tv_excess_mean": g["tv_excess"].mean(),
            "wall_seconds_mean": g["wall_seconds"].mean(),
        }
        rows.append(row)
    return pd.DataFrame(rows).astype({"first_diverged_epoch": "Int64"})


# ------------------------------------------------------------------------------------------------------ tests


def cliffs_delta(x: Sequence[float], y: Sequence[float]) -> float:
    """P(X > Y) - P(X < Y) over all pairs (NaN when a group is empty)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if not len(x) or not len(y):
        return math.nan
    diff = x[:, None] - y[None, :]
    return float((np.sign(diff)).mean())


def cohens_d(x: Sequence[float], y: Sequence[float]) -> float:
    """(mean x - mean y) / pooled s.d. (ddof=1); NaN when undefined."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 2 or len(y) < 2:
        return math.nan
    pooled = math.sqrt(((len(x) - 1) * x.var(ddof=1) + (len(y) - 1) * y.var(ddof=1)) / (len(x) + len(y) - 2))
    return float((x.mean() - y.mean()) / pooled) if pooled > 0 else math.nan


def _result(statistic=math.nan, p=math.nan, effect=math.nan, effect_name="", n_variant=0, n_baseline=0, note=""):
    return {"statistic": float(statistic), "p": float(p), "effect_size": float(effect), "effect_name": effect_name,
            "n_variant": int(n_variant), "n_baseline": int(n_baseline), "note": note}


def _finite(values) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    return x[np.isfinite(x)]


def _too_small(x, y, minimum: int = 2) -> str:
    return "" if len(x) >= minimum and len(y) >= minimum else f"fewer than {minimum} finite values in a group"


def brown_forsythe(x, y) -> dict:
    """Levene's test with the median as centre; effect: ratio of the s.d.s (variant / baseline)."""
    x, y = _finite(x), _finite(y)
    n = {"n_variant": len(x), "n_baseline": len(y), "effect_name": "sd_ratio"}
    if note := _too_small(x, y):
        return _result(note=note, **n)
    zx, zy = np.abs(x - np.median(x)), np.abs(y - np.median(y))
    if np.ptp(zx) == 0 and np.ptp(zy) == 0:
        note = "zero variance in both groups" if np.ptp(x) == 0 and np.ptp(y) == 0 else \
            "no spread of absolute deviations from the median within either group"
        return _result(note=note, **n)
    stat, p = sps.levene(x, y, center="median")
    ratio = x.std(ddof=1) / y.std(ddof=1) if y.std(ddof=1) > 0 else math.nan
    return _result(stat, p, ratio, note="" if np.isfinite(ratio) else "baseline s.d. is zero", **n)


def mann_whitney(x, y) -> dict:
    """Two-sided Mann-Whitney U; effect: Cliff's delta (variant vs baseline)."""
    x, y = _finite(x), _finite(y)
    n = {"n_variant": len(x), "n_baseline": len(y), "effect_name": "cliffs_delta"}
    if note := _too_small(x, y):
        return _result(note=note, **n)
    if np.ptp(np.concatenate([x, y])) == 0:
        return _result(effect=0.0, note="all values equal", **n)
    stat, p = sps.mannwhitneyu(x, y, alternative="two-sided")
    return _result(stat, p, cliffs_delta(x, y), **n)


def welch_t(x, y) -> dict:
    """Welch's unequal-variance t-test; effect: Cohen's d with the pooled s.d."""
    x, y = _finite(x), _finite(y)
    n = {"n_variant": len(x), "n_baseline": len(y), "effect_name": "cohens_d"}
    if note := _too_small(x, y):
        return _result(note=note, **n)
    if np.ptp(x) == 0 and np.ptp(y) == 0:
        return _result(note="zero variance in both groups", **n)
    stat, p = sps.ttest_ind(x, y, equal_var=False)
    return _result(stat, p, cohens_d(x, y), **n)


def fisher_unstable(unstable_x, unstable_y) -> dict:
    """Fisher's exact test on (unstable, stable) counts; statistic: odds ratio, effect: rate difference."""
    ux, uy = np.asarray(unstable_x, dtype=bool), np.asarray(unstable_y, dtype=bool)
    n = {"n_variant": len(ux), "n_baseline": len(uy), "effect_name": "rate_difference"}
    if note := _too_small(ux, uy):
        return _result(note=note, **n)
    diff = ux.mean() - uy.mean()
    if not ux.any() and not uy.any():
        return _result(effect=diff, note="no unstable runs in either group", **n)
    if ux.all() and uy.all():
        return _result(effect=diff, note="all runs unstable in both groups", **n)
    table = [[int(ux.sum()), int((~ux).sum())], [int(uy.sum()), int((~uy).sum())]]
    res = sps.fisher_exact(table, alternative="two-sided")
    return _result(res.statistic, res.pvalue, diff, **n)


def baselines(analysis: Mapping) -> list[str]:
    """The uniform baselines variants are compared with, in order: the reference, the mean-matched control and
    standard EP (each once)."""
    a = settings(analysis)
    return list(dict.fromkeys([a["reference"], a["mean_matched"], a["standard_ep"]]))


def comparisons(variants: Sequence[str], analysis: Mapping) -> list[tuple[str, str]]:
    """(variant, baseline) pairs: every variant against the reference, every other variant against the mean-matched
    control, and the rest against standard EP; a pair is never tested twice, and a missing baseline is skipped."""
    named = baselines(analysis)
    return [(v, baseline) for i, baseline in enumerate(named) if baseline in variants
            for v in variants if v not in named[:i + 1]]


def compare(measures: pd.DataFrame, analysis: Mapping) -> pd.DataFrame:
    """All tests of all pairs in every (protocol, dataset), with Holm-adjusted p-values: each protocol is its
    own family (split further by holm_family; see module docstring). The backprop reference is not tested."""
    a = settings(analysis)
    rows = []
    ep = measures[measures["protocol"] != BACKPROP]
    for (protocol, dataset, label), g in ep.groupby(["protocol", "dataset", "dataset_label"], sort=True):
        by_variant = dict(tuple(g.groupby("variant", sort=True)))
        for variant, baseline in comparisons(list(by_variant), a):
            x, y = by_variant[variant], by_variant[baseline]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                results = {
                    "brown_forsythe": brown_forsythe(x["final_test_acc"], y["final_test_acc"]),
                    "mann_whitney": mann_whitney(x["final_test_acc"], y["final_test_acc"]),
                    "welch_t": welch_t(x["final_test_acc"], y["final_test_acc"]),
                    "fisher_unstable": fisher_unstable(x["unstable"], y["unstable"]),
                }
            for test, res in results.items():
                rows.append({"protocol": protocol, "dataset": dataset, "dataset_label": label, "variant": variant,
                             "baseline": baseline, "test": test, **res})
    out = pd.DataFrame(rows, columns=[c for c in STATS_COLUMNS if c != "p_holm"])
    out["p_holm"] = np.nan
    for _, frame in out.groupby(HOLM_FAMILIES[a["holm_family"]], sort=False):
        out.loc[frame.index, "p_holm"] = holm(frame["p"])
    return out[STATS_COLUMNS]


def backprop_gaps(measures: pd.DataFrame, analysis: Mapping) -> pd.DataFrame:
    """Per (protocol, dataset): final test accuracy of EP's reference variant minus the backprop reference's,
    paired by seed (seeds where both are finite), with the bootstrap CI of the mean paired difference."""
    a = settings(analysis)
    bp = measures[measures["protocol"] == BACKPROP].set_index(["dataset", "seed"])["final_test_acc"]
    ep = measures[(measures["protocol"] != BACKPROP) & (measures["variant"] == a["reference"])]
    rows = []
    for (protocol, dataset, label), g in ep.groupby(["protocol", "dataset", "dataset_label"], sort=True):
        if dataset not in bp.index.get_level_values("dataset"):
            continue
        pairs = pd.DataFrame({"ep": g.set_index("seed")["final_test_acc"], "backprop": bp.xs(dataset)})
        pairs = pairs.dropna()
        rows.append({"protocol": protocol, "dataset": dataset, "dataset_label": label, "variant": a["reference"],
                     "n_pairs": len(pairs), "ep_mean": pairs["ep"].mean(), "backprop_mean": pairs["backprop"].mean(),
                     **describe(pairs["ep"] - pairs["backprop"], a, "gap", protocol, dataset, "backprop_gap")})
    return pd.DataFrame(rows, columns=GAP_COLUMNS)


# -------------------------------------------------------------------------------------------------- the rule


def analyze(runs: pd.DataFrame, epochs: pd.DataFrame, analysis: Mapping
            ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(stats, summary, backprop gaps) tables of the grid."""
    a = settings(analysis)
    measures = run_measures(runs, epochs, a["collapse_drop"])
    return compare(measures, a), summarize(measures, epochs, a), backprop_gaps(measures, a)


def write_stats(inputs: Mapping[str, str], outputs: Mapping[str, str], analysis: Mapping, protocol: str) -> None:
    """One protocol's stats.csv, summary.csv and gaps.csv from its runs/epochs tables (and the backprop reference's,
    ``reference_runs``/``reference_epochs``, for the gaps)."""
    tables = {name: pd.concat([read_table(inputs[key], f"{name} table") for key in (name, f"reference_{name}")
                               if key in inputs.keys()], ignore_index=True) for name in ("runs", "epochs")}
    stats, summary, gaps = analyze(tables["runs"], tables["epochs"], analysis)
    write_table(outputs["stats"], stats)
    write_table(outputs["summary"], summary[summary["protocol"] == protocol])
    write_table(outputs["gaps"], gaps)
