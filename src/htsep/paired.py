"""Paired comparisons of two arms whose runs share their seeds (the same initial weights and batch order), as the
preregistered primary tests use them.

For a variant ``a`` against a baseline ``b`` over seeds present in both:

- accuracy: the Wilcoxon signed-rank test of the paired differences a - b (scipy), the mean difference and its
  percentile bootstrap CI over seeds (resampling pairs);
- spread: the Pitman-Morgan test of equal variances of paired samples (the correlation of a + b with a - b), the
  s.d. ratio a / b and its bootstrap CI over seeds;
- failures: McNemar's exact test of the discordant pairs (statsmodels);
- "no effect": two one-sided paired t-tests against an equivalence margin (TOST, statsmodels).

``contrast_tests`` runs the three tests of one contrast from its ``arms``, ``verdict`` reads each row and ``decide``
adjusts a table of them within its declared families (Holm) and adds each verdict and resolution;
``detectable`` finds, by simulation, the smallest effect a design finds with a given power; ``resolution`` applies it
to the accuracy and spread tests from an observed (or recorded) spread of two arms (``spread``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.weightstats import ttost_paired


def pairs(a: Sequence[float], b: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """The pairs where both values are finite (a seed whose run failed in either arm drops out of a numeric test)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples need one value per seed in each arm, got {a.shape} and {b.shape}")
    keep = np.isfinite(a) & np.isfinite(b)
    return a[keep], b[keep]


def wilcoxon(a: Sequence[float], b: Sequence[float]) -> dict:
    """Two-sided Wilcoxon signed-rank test of a - b (Pratt: zero differences are ranked, then dropped); NaN p when
    every difference is zero or there are fewer than two pairs."""
    a, b = pairs(a, b)
    d = a - b
    if len(d) < 2 or not np.any(d):
        return {"statistic": math.nan, "p": math.nan, "n_pairs": len(d)}
    result = sps.wilcoxon(a, b, zero_method="pratt", alternative="two-sided")
    return {"statistic": float(result.statistic), "p": float(result.pvalue), "n_pairs": len(d)}


def _bootstrap(statistic: Callable[[np.ndarray, np.ndarray], float], a: np.ndarray, b: np.ndarray, n: int,
               level: float, rng: np.random.Generator) -> tuple[float, float]:
    """Percentile CI of ``statistic`` over ``n`` resamples of the pairs (scipy.stats.bootstrap, paired; as the grid's
    CIs); NaN without resamples or when the statistic is undefined."""
    if n < 1:
        return math.nan, math.nan
    with np.errstate(all="ignore"):
        result = sps.bootstrap((a, b), statistic, paired=True, vectorized=False, n_resamples=n, method="percentile",
                               confidence_level=level, rng=rng)
    low, high = result.confidence_interval
    return float(low), float(high)


def mean_difference(a: Sequence[float], b: Sequence[float], n_boot: int, level: float, seed: int) -> dict:
    """Mean of a - b over the pairs, with its percentile bootstrap CI (resampled seeds)."""
    a, b = pairs(a, b)
    if len(a) < 2:
        return {"difference": float(np.mean(a - b)) if len(a) else math.nan, "ci_low": math.nan,
                "ci_high": math.nan, "n_pairs": len(a)}
    low, high = _bootstrap(lambda x, y: float(np.mean(x - y)), a, b, n_boot, level, np.random.default_rng(seed))
    return {"difference": float(np.mean(a - b)), "ci_low": low, "ci_high": high, "n_pairs": len(a)}


def _sd_ratio(a: np.ndarray, b: np.ndarray) -> float:
    sb = b.std(ddof=1)
    return float(a.std(ddof=1) / sb) if sb > 0 else math.nan


def pitman_morgan_t(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pitman-Morgan's t over the last axis: with s = a + b and d = a - b, cov(s, d) = var(a) - var(b), so the test
    is the t-test of their correlation r (n - 2 degrees of freedom); NaN where s or d is constant."""
    s, d = a + b, a - b
    s, d = s - s.mean(axis=-1, keepdims=True), d - d.mean(axis=-1, keepdims=True)
    with np.errstate(all="ignore"):
        r = (s * d).sum(axis=-1) / np.sqrt((s * s).sum(axis=-1) * (d * d).sum(axis=-1))
        return r * np.sqrt((a.shape[-1] - 2) / np.maximum(1 - r * r, 1e-300))


def pitman_morgan_p(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Two-sided p of Pitman-Morgan's test over the last axis (one test per row of simulated designs)."""
    return 2 * sps.t.sf(np.abs(pitman_morgan_t(a, b)), a.shape[-1] - 2)


def pitman_morgan(a: Sequence[float], b: Sequence[float], n_boot: int, level: float, seed: int) -> dict:
    """Pitman-Morgan test of var(a) = var(b) for paired samples (``pitman_morgan_t``). Effect: the s.d. ratio a / b
    with its bootstrap CI over seeds."""
    a, b = pairs(a, b)
    n = len(a)
    out = {"sd_ratio": math.nan, "ci_low": math.nan, "ci_high": math.nan, "statistic": math.nan, "p": math.nan,
           "n_pairs": n}
    if n < 3:
        return out
    out["sd_ratio"] = _sd_ratio(a, b)
    if np.ptp(a + b) == 0 or np.ptp(a - b) == 0:
        return out
    t = float(pitman_morgan_t(a, b))
    out |= {"statistic": t, "p": float(2 * sps.t.sf(abs(t), n - 2))}
    out["ci_low"], out["ci_high"] = _bootstrap(_sd_ratio, a, b, n_boot, level, np.random.default_rng(seed))
    return out


def mcnemar_exact(failed_a: Sequence[bool], failed_b: Sequence[bool]) -> dict:
    """McNemar's exact test of failures in paired runs: only the seeds where one arm failed and the other did not
    count (``only_a``, ``only_b``); p = 1 when there are none."""
    failed_a, failed_b = np.asarray(failed_a, dtype=bool), np.asarray(failed_b, dtype=bool)
    if failed_a.shape != failed_b.shape:
        raise ValueError(f"paired failures need one value per seed in each arm, got {failed_a.shape} and "
                         f"{failed_b.shape}")
    table = np.array([[np.sum(failed_a & failed_b), np.sum(failed_a & ~failed_b)],
                      [np.sum(~failed_a & failed_b), np.sum(~failed_a & ~failed_b)]])
    only_a, only_b = int(table[0, 1]), int(table[1, 0])
    p = 1.0 if only_a + only_b == 0 else float(mcnemar(table, exact=True).pvalue)
    return {"only_a": only_a, "only_b": only_b, "both": int(table[0, 0]), "p": p, "n_pairs": len(failed_a)}


def tost(a: Sequence[float], b: Sequence[float], margin: float) -> dict:
    """Equivalence of the paired means within +-``margin`` (two one-sided paired t-tests): a small p supports
    |mean(a - b)| < margin."""
    a, b = pairs(a, b)
    if len(a) < 2 or np.ptp(a - b) == 0:
        inside = len(a) > 0 and abs(float(np.mean(a - b))) < margin
        return {"p": 0.0 if inside and len(a) > 1 else math.nan, "margin": margin, "n_pairs": len(a)}
    p, _, _ = ttost_paired(a, b, -margin, margin)
    return {"p": float(p), "margin": margin, "n_pairs": len(a)}


def holm(p: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values; NaN entries stay NaN and are not counted in the family."""
    p = np.asarray(p, dtype=float)
    out = np.full_like(p, np.nan)
    idx = np.flatnonzero(np.isfinite(p))
    order = idx[np.argsort(p[idx], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(idx) - rank) * p[i]))
        out[i] = running
    return out


def power(simulate: Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray]],
          test: Callable[[np.ndarray, np.ndarray], np.ndarray], alpha: float, n_sims: int, seed: int) -> float:
    """Share of ``n_sims`` simulated designs (``simulate(rng, n_sims)`` -> paired samples, one design per row) in
    which ``test`` (-> one p per row) is below ``alpha``."""
    return float(np.mean(test(*simulate(np.random.default_rng(seed), n_sims)) < alpha))


def detectable(effects: Sequence[float], simulate: Callable[[float, np.random.Generator, int], tuple],
               test: Callable[[np.ndarray, np.ndarray], np.ndarray], alpha: float, power_wanted: float, n_sims: int,
               seed: int) -> float:
    """The smallest of ``effects`` (ascending) found with at least ``power_wanted`` (simulated; ``simulate(effect,
    rng, n_sims)`` -> paired samples, one design per row); NaN if none is."""
    for effect in effects:
        if power(lambda rng, k, e=effect: simulate(e, rng, k), test, alpha, n_sims, seed) >= power_wanted:
            return float(effect)
    return math.nan


EFFECTS = {"accuracy": np.round(np.arange(0.0005, 0.0301, 0.0005), 4),  # mean differences (fraction)
           "spread": np.round(np.arange(1.05, 4.01, 0.05), 2)}  # s.d. ratios


def spread(a: Sequence[float], b: Sequence[float]) -> dict | None:
    """The spread of two paired arms: each arm's s.d. across seeds, their correlation through the shared seed and the
    s.d. of the differences (None with fewer than 3 finite pairs)."""
    a, b = pairs(a, b)
    if len(a) < 3:
        return None
    r = float(np.corrcoef(a, b)[0, 1]) if np.ptp(a) and np.ptp(b) else 0.0
    return {"sd_variant": float(a.std(ddof=1)), "sd_baseline": float(b.std(ddof=1)), "correlation": r,
            "sd_difference": float(np.std(a - b, ddof=1)), "n_pairs": len(a)}


def resolution(test: str, observed: dict, n: int, alpha: float, power_wanted: float, n_sims: int, seed: int) -> float:
    """The smallest effect of ``test`` found with ``power_wanted`` at ``alpha`` by ``n`` pairs with the ``observed``
    spread, simulated from normal paired samples: a mean difference by Wilcoxon ('accuracy'), an s.d. ratio by
    Pitman-Morgan ('spread', the arms correlated as observed)."""
    if test == "accuracy":
        sd_d = observed["sd_difference"] or 1e-6
        return detectable(EFFECTS["accuracy"], lambda e, rng, k: (rng.normal(e, sd_d, (k, n)), np.zeros((k, n))),
                          lambda x, y: sps.wilcoxon(x, y, zero_method="pratt", axis=-1).pvalue, alpha, power_wanted,
                          n_sims, seed)
    sd, r = observed["sd_baseline"] or 1e-6, min(max(observed["correlation"], 0.0), 0.99)

    def ratios(ratio, rng, k):
        common, base, own = np.moveaxis(rng.normal(0, 1, (k, 3, n)), 1, 0)  # per design: the seed's part, each arm's
        return (ratio * sd * (math.sqrt(r) * common + math.sqrt(1 - r) * own),
                sd * (math.sqrt(r) * common + math.sqrt(1 - r) * base))

    return detectable(EFFECTS["spread"], ratios, pitman_morgan_p, alpha, power_wanted, n_sims, seed)


# ------------------------------------------------------------------------------------------------ contrasts
# The three tests of a contrast (variant minus baseline) and their verdict, as the confirmatory and depth experiments
# report them.

TESTS = ("accuracy", "spread", "failures")
# a test whose resolution is NaN finds none of the simulated effects (EFFECTS): its resolution lies beyond
BEYOND = {"accuracy": 100 * float(EFFECTS["accuracy"].max()), "spread": float(EFFECTS["spread"].max())}


def arms(variant_runs: pd.DataFrame, baseline_runs: pd.DataFrame) -> pd.DataFrame:
    """One row per seed run in both arms (each arm's runs of one protocol, dataset and variant): final accuracy and
    failure of each."""
    columns = ["final_test_acc", "broke"]
    own = pd.merge(variant_runs[["seed", *columns]], baseline_runs[["seed", *columns]], on="seed",
                   suffixes=("_a", "_b")).set_index("seed").sort_index()
    own = own.dropna(subset=["broke_a", "broke_b"])
    return pd.DataFrame({"a": own["final_test_acc_a"], "b": own["final_test_acc_b"],
                         "failed_a": own["broke_a"].astype(bool), "failed_b": own["broke_b"].astype(bool)})


def contrast_tests(paired_arms: pd.DataFrame, name: str, variant: str, baseline: str, spec: Mapping) -> list[dict]:
    """The three tests (and TOST) of one contrast from its ``paired_arms`` (see ``arms``; ``spec``: bootstrap,
    ci_level, bootstrap_seed and the equivalence margins)."""
    a, b = paired_arms["a"].to_numpy(float), paired_arms["b"].to_numpy(float)
    boot, level, seed = spec["bootstrap"], spec["ci_level"], spec["bootstrap_seed"]
    key = {"contrast": name, "variant": variant, "baseline": baseline}
    accuracy = wilcoxon(a, b) | mean_difference(a, b, boot, level, seed)
    equivalence = tost(a, b, spec["equivalence"]["accuracy"])
    ratio = pitman_morgan(a, b, boot, level, seed)
    failures = mcnemar_exact(paired_arms["failed_a"], paired_arms["failed_b"])
    return [
        {**key, "test": "accuracy", "statistic": accuracy["statistic"], "p": accuracy["p"],
         "effect": accuracy["difference"], "effect_name": "mean difference", "ci_low": accuracy["ci_low"],
         "ci_high": accuracy["ci_high"], "n_pairs": accuracy["n_pairs"], "p_equivalence": equivalence["p"],
         "margin": equivalence["margin"]},
        {**key, "test": "spread", "statistic": ratio["statistic"], "p": ratio["p"], "effect": ratio["sd_ratio"],
         "effect_name": "s.d. ratio", "ci_low": ratio["ci_low"], "ci_high": ratio["ci_high"],
         "n_pairs": ratio["n_pairs"], "margin": spec["equivalence"]["sd_ratio"]},
        {**key, "test": "failures", "statistic": math.nan, "p": failures["p"],
         "effect": failures["only_a"] - failures["only_b"], "effect_name": "failed only in variant minus only in "
                                                                           "baseline", "n_pairs": failures["n_pairs"],
         "failed_variant": int(paired_arms["failed_a"].sum()),
         "failed_baseline": int(paired_arms["failed_b"].sum())},
    ]


def verdict(row: pd.Series, alpha: float) -> str:
    """'higher'/'lower' (Holm-significant, and the effect's CI excludes no effect), 'equivalent' (TOST, or an
    s.d.-ratio CI inside the margin), 'inconclusive' otherwise (also when the test and the CI disagree: Pitman-Morgan
    assumes normal accuracies, which one collapsed run breaks), 'untestable' without a p-value (or a pair)."""
    if row["test"] == "failures":
        return "untestable" if not math.isfinite(row["p"]) or not row["n_pairs"] else \
            ("different" if row["p_holm"] < alpha else "no difference found")
    if not math.isfinite(row["p"]):
        return "untestable"
    no_effect = 0 if row["test"] == "accuracy" else 1
    if row["p_holm"] < alpha:  # a CI that contains no effect, or is NaN, disagrees with the test
        return "higher" if row["ci_low"] > no_effect else "lower" if row["ci_high"] < no_effect else "inconclusive"
    if row["test"] == "accuracy" and row.get("p_equivalence", math.nan) < alpha:
        return "equivalent"
    if row["test"] == "spread" and 1 / row["margin"] < row["ci_low"] and row["ci_high"] < row["margin"]:
        return "equivalent"
    return "inconclusive"


def decide(table: pd.DataFrame, held: pd.Series, families: Sequence[str], size: Callable[[tuple], int],
           spreads: Mapping[tuple, dict | None], spread_key: Callable[[pd.Series], tuple],
           spec: Mapping) -> pd.DataFrame:
    """``table`` (rows of contrast_tests) with p_holm, verdict and detectable: Holm within each family (the rows
    grouped by the columns ``families``, none: one family), whose ``size(key)`` declared tests enter with ``held``
    (each row's p, 1 for a test not yet computable) and p = 1 for those without a row; each accuracy and spread
    test's resolution at its family's strictest Holm level, from the observed spread ``spreads[spread_key(row)]``."""
    table = table.assign(p_holm=np.nan, detectable=np.nan)
    groups = list(table.groupby(list(families))) if families else [((), table)]
    levels = {}
    for key, members in groups:
        family_p = np.concatenate([held[members.index].to_numpy(float), np.ones(max(size(key) - len(members), 0))])
        table.loc[members.index, "p_holm"] = holm(family_p)[:len(members)]
        levels[key] = spec["alpha"] / max(int(np.isfinite(family_p).sum()), 1)  # Holm's strictest step
    table["verdict"] = [verdict(row, spec["alpha"]) for _, row in table.iterrows()]
    for key, members in groups:
        for i, row in members[members["test"].isin(["accuracy", "spread"])].iterrows():
            observed = spreads[spread_key(row)]
            table.loc[i, "detectable"] = math.nan if observed is None else resolution(
                row["test"], observed, observed["n_pairs"], levels[key], spec["power"], spec["simulations"],
                spec["bootstrap_seed"])
    return table
