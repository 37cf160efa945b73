"""Statistics of the stability frontier: failure probability against the stress level, per dt variant.

Per (dataset, axis), with x = log(level):

- a binomial GLM (statsmodels) logit P(fail) = a_v + b_v x per variant v (the model with a variant term and its
  interaction with x), against the common curve a + b x: the likelihood-ratio test of the variant terms,
  chi-square with 2 (V - 1) degrees of freedom;
- each variant's critical level exp(-a_v / b_v), where half the runs fail, with a percentile bootstrap CI over
  seeds (seeds resampled together for every variant and level, since a seed fixes the initial weights and the
  batch order of all of its runs). A level outside the axis is reported as censored ("> max", "< min"), never
  extrapolated;
- separation is data: a variant none (all) of whose runs failed is censored above (below) the axis; outcomes
  separated by a gap between levels leave the logit slope infinite and the critical level anywhere in the gap,
  so the variant gets that bracket and no CI; outcomes that overlap at one level only put it at that level (no
  resample can move it elsewhere), with the levels between which the rate jumps from 0 to 1 and no CI;
- the positive control (a uniform step whose critical level theory puts elsewhere): the same LR test of its variant
  against its baseline and the ratio of their critical levels with a bootstrap CI, so the sweep shows it can see a
  shift where one is expected;
- the resolution of the test: the smallest shift of one variant's critical level against another that a Wald
  test at ``alpha`` would detect with probability ``power``, from the common curve's Fisher information at the
  sweep's design (levels x seeds);
- the mechanism link: how failed runs failed (``failure_kind``, from ``htsep.outcomes``) and from which epoch,
  with a chi-square test of kind x variant and a Kruskal-Wallis test of onset epochs across variants.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats as sps

from ...files import write_table
from ...outcomes import rates, run_outcomes
from ...records import merge, read_shard, write_provenance
from .plan import KEYS

UNDEFINED_LIMIT = 0.1  # bootstrap CIs are given only if at most this share of resamples is completely separated


def separation(x: np.ndarray, y: np.ndarray) -> str | None:
    """How binary outcomes ``y`` are separated along ``x``: 'none failed', 'all failed', 'complete' (a gap of
    levels splits them), 'quasi-complete' (they overlap at one level only) or None (an MLE exists)."""
    if not y.any():
        return "none failed"
    if y.all():
        return "all failed"
    lo_fail, hi_safe = x[y].min(), x[~y].max()
    lo_safe, hi_fail = x[~y].min(), x[y].max()
    if hi_safe < lo_fail or hi_fail < lo_safe:
        return "complete"
    if hi_safe <= lo_fail or hi_fail <= lo_safe:
        return "quasi-complete"
    return None


def _saturated_llf(x: np.ndarray, y: np.ndarray) -> float:
    """Supremum of the logistic log-likelihood of separated data: only levels with mixed outcomes contribute."""
    llf = 0.0
    for level in np.unique(x):
        p = y[x == level].mean()
        if 0 < p < 1:
            llf += (x == level).sum() * (p * math.log(p) + (1 - p) * math.log(1 - p))
    return llf


def fit_logistic(x: np.ndarray, y: np.ndarray) -> dict:
    """logit P(y) = a + b x by maximum likelihood (statsmodels GLM, binomial family); for separated data the
    supremum log-likelihood and no coefficients."""
    x, y = np.asarray(x, float), np.asarray(y, bool)
    kind = separation(x, y)
    if kind is not None:
        return {"a": math.nan, "b": math.nan, "llf": _saturated_llf(x, y), "separated": kind, "cov": None}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = sm.GLM(y.astype(float), sm.add_constant(x), family=sm.families.Binomial()).fit()
    a, b = result.params
    return {"a": float(a), "b": float(b), "llf": float(result.llf), "separated": None,
            "cov": np.asarray(result.cov_params())}


def _rises(x: np.ndarray, y: np.ndarray) -> bool:
    """Whether separated outcomes fail above (not below) the level that separates them."""
    return bool(x[~y].max() <= x[y].min())


def critical_x(fit: Mapping, x: np.ndarray, y: np.ndarray) -> float:
    """log level where the fitted failure probability is 1/2: -a/b; the overlap level of quasi-complete
    separation; +inf / -inf when no (every) run failed; NaN for a complete gap or a curve that does not rise."""
    kind = fit["separated"]
    if kind == "none failed":
        return math.inf
    if kind == "all failed":
        return -math.inf
    if kind in ("quasi-complete", "complete"):
        return float(x[y].min()) if kind == "quasi-complete" and _rises(x, y) else math.nan
    return -fit["a"] / fit["b"] if fit["b"] > 0 else math.nan


def detectable_shift(fit: Mapping, x_levels: np.ndarray, n_per_level, alpha: float, power: float) -> float:
    """Smallest shift of one variant's critical log level against another's that a two-sided Wald test at
    ``alpha`` detects with probability ``power``, both variants following the curve ``fit`` at the design
    (``n_per_level`` runs, one number or one per level, at each of ``x_levels``):
    (z_(1-alpha/2) + z_power) * sqrt(2 Var(-a/b))."""
    if fit["separated"] is not None or not fit["b"] > 0:
        return math.nan
    a, b = fit["a"], fit["b"]
    p = 1 / (1 + np.exp(-(a + b * x_levels)))
    w = n_per_level * p * (1 - p)
    info = np.array([[w.sum(), (w * x_levels).sum()], [(w * x_levels).sum(), (w * x_levels**2).sum()]])
    grad = np.array([-1 / b, a / b**2])
    var = float(grad @ np.linalg.solve(info, grad))
    return (sps.norm.ppf(1 - alpha / 2) + sps.norm.ppf(power)) * math.sqrt(2 * var)


def _level_text(x: float) -> str:
    return f"{math.exp(x):.3g}"


def _critical_row(x: np.ndarray, y: np.ndarray, fit: Mapping, boot: np.ndarray, spec: Mapping) -> dict:
    """Critical level of one variant (``fit``: its logistic fit): estimate, status, bootstrap CI and its text."""
    x50 = critical_x(fit, x, y)
    lo_axis, hi_axis = x.min(), x.max()
    row = {"critical_level": math.nan, "ci_low": math.nan, "ci_high": math.nan, "separated": fit["separated"],
           "n_boot": len(boot), "boot_undefined": float(np.isnan(boot).mean()) if len(boot) else math.nan}
    if fit["separated"] == "complete" and _rises(x, y):
        lo, hi = float(x[~y].max()), float(x[y].min())
        return row | {"status": "separated", "bracket_low": math.exp(lo), "bracket_high": math.exp(hi),
                      "text": f"between {_level_text(lo)} and {_level_text(hi)} (separated)"}
    if np.isnan(x50):
        return row | {"status": "no rise", "text": "failure does not rise along the axis"}
    if x50 > hi_axis:
        return row | {"status": "censored above", "text": f"> {_level_text(hi_axis)}"}
    if x50 < lo_axis:
        return row | {"status": "censored below", "text": f"< {_level_text(lo_axis)}"}
    row["critical_level"] = math.exp(x50)
    if fit["separated"] == "quasi-complete":  # resamples cannot leave the overlap level either: no CI
        levels = np.unique(x)
        rate = np.array([y[x == level].mean() for level in levels])
        lo, hi = levels[rate == 0].max(initial=lo_axis), levels[rate == 1].min(initial=hi_axis)
        return row | {"status": "separated", "bracket_low": math.exp(lo), "bracket_high": math.exp(hi),
                      "text": f"{_level_text(x50)} (separated: none failed at {_level_text(lo)}, all at "
                              f"{_level_text(hi)}; no CI)"}
    defined = boot[~np.isnan(boot)]
    if not len(defined) or row["boot_undefined"] > UNDEFINED_LIMIT:
        return row | {"status": "estimated", "text": f"{_level_text(x50)} (CI undefined: resamples separated)"}
    tail = (1 - spec["ci_level"]) / 2
    low, high = np.quantile(defined, [tail, 1 - tail])
    row |= {"ci_low": math.exp(low) if np.isfinite(low) else (math.inf if low > 0 else 0.0),
            "ci_high": math.exp(high) if np.isfinite(high) else (math.inf if high > 0 else 0.0)}
    low_text = f"< {_level_text(lo_axis)}" if low < lo_axis else _level_text(low)
    high_text = f"> {_level_text(hi_axis)}" if high > hi_axis else _level_text(high)
    return row | {"status": "estimated", "text": f"{_level_text(x50)} [{low_text}, {high_text}]"}


def _bootstrap(frame: pd.DataFrame, variants: Sequence[str], spec: Mapping, key: int) -> dict[str, dict]:
    """Per variant: critical log levels and curve coefficients of ``spec['bootstrap']`` seed resamples."""
    rng = np.random.default_rng([spec["bootstrap_seed"], key])
    seeds = np.array(sorted(set(frame["seed"])))
    by_seed = {v: {s: (np.log(g["level"].to_numpy(float)), g["broke"].to_numpy(bool))
                   for s, g in frame[frame["variant"] == v].groupby("seed")} for v in variants}
    out = {v: {"x50": [], "coef": []} for v in variants}
    for _ in range(spec["bootstrap"]):
        draw = rng.choice(seeds, size=len(seeds), replace=True)
        for v in variants:
            parts = [by_seed[v][s] for s in draw if s in by_seed[v]]
            if not parts:  # kept as undefined, so every variant's resamples stay aligned (paired)
                out[v]["x50"].append(math.nan)
                continue
            x, y = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
            fit = fit_logistic(x, y)
            out[v]["x50"].append(critical_x(fit, x, y))
            if fit["separated"] is None:
                out[v]["coef"].append((fit["a"], fit["b"]))
    return {v: {"x50": np.array(o["x50"], float), "coef": np.array(o["coef"], float).reshape(-1, 2)}
            for v, o in out.items()}


def _curves(frame: pd.DataFrame, fits: Mapping[str, Mapping], boot: Mapping, spec: Mapping) -> list[dict]:
    """Fitted failure probability on a grid of levels per variant (``fits``), with a pointwise bootstrap band."""
    x = np.log(frame["level"].to_numpy(float))
    grid = np.linspace(x.min(), x.max(), 60)
    tail = (1 - spec["ci_level"]) / 2
    rows = []
    for v, fit in fits.items():
        if fit["separated"] is not None:
            continue
        coef = boot[v]["coef"]
        band = 1 / (1 + np.exp(-(coef[:, :1] + coef[:, 1:] * grid))) if len(coef) else np.full((1, len(grid)), np.nan)
        low, high = np.quantile(band, [tail, 1 - tail], axis=0)
        p = 1 / (1 + np.exp(-(fit["a"] + fit["b"] * grid)))
        rows += [{"variant": v, "level": math.exp(g), "p_fail": pi, "p_low": lo, "p_high": hi}
                 for g, pi, lo, hi in zip(grid, p, low, high, strict=True)]
    return rows


def _mechanism_tests(frame: pd.DataFrame, variants: Sequence[str]) -> dict:
    """Does dt change how or when runs fail? chi-square of failure kind x variant and Kruskal-Wallis of the onset
    epochs, over the failed runs."""
    failed = frame[frame["broke"]]
    out = {"n_failed": len(failed), "p_kind": math.nan, "p_onset": math.nan}
    table = pd.crosstab(failed["failure_kind"], failed["variant"]) if len(failed) else pd.DataFrame()
    if table.shape[0] > 1 and table.shape[1] > 1:
        out["p_kind"] = float(sps.chi2_contingency(table.to_numpy()).pvalue)
    onsets = [g["failure_epoch"].to_numpy(float) for _, g in failed.groupby("variant")]
    if len(onsets) > 1 and all(len(o) for o in onsets) and len(np.unique(np.concatenate(onsets))) > 1:
        out["p_onset"] = float(sps.kruskal(*onsets).pvalue)
    for v in variants:
        own = failed[failed["variant"] == v]
        out[f"onset_median_{v}"] = float(own["failure_epoch"].median()) if len(own) else math.nan
    return out


def merge_shards(records: Sequence[str], local: Sequence[str], declared: Sequence[Sequence], variants: Sequence[str]
                 ) -> pd.DataFrame:
    """One row per declared run from the committed shard tables ``records`` and this invocation's ``local`` ones
    (htsep.records: the last read wins), variants in the frontier's order."""
    mine = [read_shard(path, KEYS, local=True) for path in local]
    runs = merge(records, pd.concat(mine, ignore_index=True) if mine else None, KEYS, declared, "frontier")
    runs["broke"] = runs["broke"].astype(bool) if len(runs) else pd.Series(dtype=bool)
    order = {v: i for i, v in enumerate(variants)}
    return runs.sort_values(KEYS, key=lambda c: c.map(order) if c.name == "variant" else c, ignore_index=True)


def lr_test(per: Mapping[str, tuple[np.ndarray, np.ndarray]], own: Mapping[str, Mapping], names: Sequence[str]
            ) -> dict:
    """Likelihood-ratio test of one curve per variant of ``names`` (``per``: variant -> (log levels, failed);
    ``own``: variant -> its fitted curve) against one common curve, chi-square with 2 (V - 1) degrees of freedom."""
    x = np.concatenate([per[v][0] for v in names])
    y = np.concatenate([per[v][1] for v in names])
    common = fit_logistic(x, y)
    stat, df = 2 * (sum(own[v]["llf"] for v in names) - common["llf"]), 2 * (len(names) - 1)
    return {"common": common, "x": x, "y": y, "stat": stat, "df": df,
            "p": float(sps.chi2.sf(stat, df)) if df > 0 else math.nan}


def _control_row(per: Mapping, own: Mapping, boot: Mapping, control: Mapping | None, spec: Mapping) -> dict:
    """The positive control: the LR test of its variant against its baseline and the ratio of their critical
    levels (variant / baseline) with a bootstrap CI over the same seed resamples; NaN where either is undefined."""
    names = [control["variant"], control["baseline"]] if control else []
    if not names or any(n not in per for n in names):
        return {}
    test = lr_test(per, own, names)
    x50 = {n: critical_x(own[n], *per[n]) for n in names}
    log_ratio = x50[names[0]] - x50[names[1]]
    diffs = boot[names[0]]["x50"] - boot[names[1]]["x50"]
    defined = diffs[~np.isnan(diffs)]  # a censored arm (+-inf) is a resample's answer, as in the critical CIs
    tail = (1 - spec["ci_level"]) / 2
    low, high = (np.quantile(defined, [tail, 1 - tail]) if len(diffs) and len(defined) >= (1 - UNDEFINED_LIMIT)
                 * len(diffs) else (math.nan, math.nan))
    return {"control_variant": names[0], "control_baseline": names[1], "control_n_runs": len(per[names[0]][1]),
            "control_n_failed": int(per[names[0]][1].sum()), "control_lr_stat": test["stat"],
            "control_lr_df": test["df"], "control_lr_p": test["p"],
            "control_ratio": math.exp(log_ratio) if np.isfinite(log_ratio) else math.nan,
            "control_ratio_low": math.exp(low), "control_ratio_high": math.exp(high)}


def analyze(runs: pd.DataFrame, variants: Sequence[str], spec: Mapping, control: Mapping | None = None
            ) -> dict[str, pd.DataFrame]:
    """The frontier's tables from its runs: ``cells`` (failure rates, kinds and onsets per level x variant),
    ``fits`` (LR test of ``variants``, resolution and mechanism tests, and the positive ``control``'s test and
    critical-level ratio, per dataset x axis), ``critical`` (critical levels per variant) and ``curves`` (fitted
    curves with bands). ``spec``: bootstrap, bootstrap_seed, ci_level, alpha, power; ``control``: variant,
    baseline."""
    cells = rates(runs, ["dataset", "dataset_label", "axis", "level", "variant"], spec["alpha"]) if len(runs) \
        else pd.DataFrame()
    every = list(variants) + ([control["variant"]] if control else [])
    fits, critical, curves = [], [], []
    for key, ((dataset, axis), frame) in enumerate(runs.groupby(["dataset", "axis"], sort=True)):
        trained = [v for v in every if (frame["variant"] == v).any()]
        present = [v for v in variants if v in trained]
        if not present:
            continue
        per = {v: (np.log(frame.loc[frame["variant"] == v, "level"].to_numpy(float)),
                   frame.loc[frame["variant"] == v, "broke"].to_numpy(bool)) for v in trained}
        own = {v: fit_logistic(*per[v]) for v in trained}
        test = lr_test(per, own, present)
        common = test["common"]
        common_x50 = critical_x(common, test["x"], test["y"])
        tested = frame[frame["variant"].isin(present)]
        n_seeds = tested.groupby(["variant", "level"])["seed"].nunique()
        boot = _bootstrap(frame, trained, spec, key)
        per_level = n_seeds.groupby("level").mean().sort_index()  # runs per variant at each level
        shift = detectable_shift(common, np.log(per_level.index.to_numpy(float)), per_level.to_numpy(float),
                                 spec["alpha"], spec["power"])
        fits.append({
            "dataset": dataset, "dataset_label": frame["dataset_label"].iloc[0], "axis": axis,
            "levels": " ".join(f"{lv:g}" for lv in sorted(set(tested["level"]))),
            "n_levels": tested["level"].nunique(), "variants": " ".join(present), "n_runs": len(tested),
            "n_seeds_min": int(n_seeds.min()), "n_seeds_max": int(n_seeds.max()), "n_failed": int(test["y"].sum()),
            "lr_stat": test["stat"], "lr_df": test["df"], "lr_p": test["p"],
            "separated": " ".join(f"{v}:{own[v]['separated']}" for v in present if own[v]["separated"]) or None,
            "common_slope": common["b"],
            "common_critical_level": math.exp(common_x50) if np.isfinite(common_x50) else math.nan,
            "detectable_shift_log": shift,
            "detectable_shift_factor": math.exp(shift) if np.isfinite(shift) else math.nan,
            "code_fingerprints": " ".join(sorted(set(frame["code_fingerprint"].dropna()))),
            "relaxation_kernels": " | ".join(sorted(set(frame["relaxation_kernel"].dropna()))),
            **_mechanism_tests(tested, present),
            **_control_row(per, own, boot, control, spec),
        })
        for v in trained:
            k, n = int(per[v][1].sum()), len(per[v][1])
            critical.append({"dataset": dataset, "axis": axis, "variant": v, "n_runs": n, "n_failed": k,
                             **_critical_row(*per[v], own[v], boot[v]["x50"], spec)})
        curves += [{"dataset": dataset, "axis": axis, **row} for row in _curves(frame, own, boot, spec)]
    return {"cells": cells, "fits": pd.DataFrame(fits), "critical": pd.DataFrame(critical),
            "curves": pd.DataFrame(curves, columns=["dataset", "axis", "variant", "level", "p_fail", "p_low",
                                                    "p_high"])}


def write_frontier(records: Sequence[str], local: Sequence[str], outputs: Mapping[str, str], params: Mapping) -> None:
    """The frontier rule: merge the shard tables (committed records first, then this invocation's) and write
    the merged runs, the analysis tables and the provenance of the runs."""
    control = params.get("positive_control")
    order = params["variants"] + ([control["variant"]] if control else [])
    runs = merge_shards(records, local, params["declared"], order)
    write_provenance(outputs["provenance"], {"runs": runs}, "frontier")
    runs = runs.drop(columns="record")
    tables = analyze(runs, params["variants"], params["statistics"], control)
    for name, table in {"runs": runs, **tables}.items():
        write_table(outputs[name], table)


def write_pilot(summary_paths: Sequence[str], outputs: Mapping[str, str], params: Mapping) -> None:
    """The pilot rule: its runs and the failure rate per (dataset, axis, level), with exact CIs, the kinds of
    failure and the latest failure onset (how many epochs the sweep needs to see failures happen)."""
    runs = run_outcomes(summary_paths, params["failure"])
    table = rates(runs, ["dataset", "axis", "level"], params["alpha"])
    table["failure_epoch_max"] = runs.groupby(["dataset", "axis", "level"])["failure_epoch"].max().to_numpy()
    write_table(outputs["runs"], runs)
    write_table(outputs["table"], table)
