"""The factorial's tables and effects, per dataset.

Runs: the committed grid and factorial records merged with this invocation's runs (a cell shared with the grid is the
grid's run), each with its cell (target dt mean, spread), the dt mean and s.d. it drew, and whether it failed (the
failure criteria of htsep.outcomes).

Effects, in accuracy points: a linear mixed model of the final test accuracy of the runs that did not fail, one mean
per cell and a random intercept per seed (statsmodels MixedLM, REML), and Wald contrasts with their CI and the
smallest effect each would find with the stated power, (z_{1-alpha/2} + z_power) x s.e.:

- ``mean`` (damping): each mean's uniform cell minus the reference mean's uniform cell;
- ``spread``: at each matched mean, each spread's cell minus the uniform cell, and averaged over the means that have
  both (``dt_mean`` empty).

Failures: per cell k/n with exact CIs; where every level of the dt mean and of the spread (as factors) has runs that
failed and runs that did not, a binomial GLM of failure on both gives odds ratios with CIs (else the counts stand).
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import statsmodels.api as sm
import statsmodels.formula.api as smf
from scipy import stats as sps
from statsmodels.tools.sm_exceptions import PerfectSeparationError, PerfectSeparationWarning

from ...files import write_table
from ...outcomes import binomial_ci, onsets, pooled_dt
from ...paired import holm
from ...records import write_provenance
from ...run_tables import merged

CELL = ["dt_mean", "dt_spread"]


def outcome_columns(runs: pd.DataFrame, epochs: pd.DataFrame, failure: Mapping) -> pd.DataFrame:
    """Each run's realised dt (pooled over layers) and whether and how it failed, from its epochs."""
    rows = []
    by_run = dict(tuple(epochs.groupby(["protocol", "dataset", "variant", "seed"], sort=False)))
    for run in runs.itertuples(index=False):
        sizes = json.loads(run.config)["model"]["sizes"][1:]
        layers = range(1, len(sizes) + 1)
        mean, std = pooled_dt(sizes, [getattr(run, f"dt_mean_l{i}") for i in layers],
                              [getattr(run, f"dt_std_l{i}") for i in layers])
        onset = onsets(by_run[(run.protocol, run.dataset, run.variant, run.seed)],
                       {"diverged": run.diverged, "diverged_epoch": run.diverged_epoch}, failure)
        held = [c for c in failure["criteria"] if math.isfinite(onset[c])]
        rows.append({"realised_dt_mean": mean, "realised_dt_std": std, "broke": bool(held),
                     "failure_kind": min(held, key=lambda c: onset[c]) if held else None})
    return pd.DataFrame(rows, index=runs.index)


def factorial_runs(records: Mapping[str, Sequence[str]], shard: Mapping[str, str], declared: Sequence[Sequence],
                   cells: Sequence[Mapping], failure: Mapping) -> pd.DataFrame:
    """One row per declared factorial run: its keys, cell, accuracy, realised dt and failure, and its record."""
    runs, epochs = merged(records, shard, declared, "factorial")
    coordinates = pd.DataFrame(list(cells)).set_index("variant")
    runs = runs.join(coordinates, on="variant")
    return pd.concat([runs, outcome_columns(runs, epochs, failure)], axis=1)


def _wald(name: str, weights: Mapping[str, float], fit, alpha: float, power: float) -> dict:
    """A contrast of the cell means (``weights``: parameter -> weight): estimate, CI, p and the smallest effect it
    would find with ``power``."""
    params = list(fit.fe_params.index)
    c = np.array([weights.get(p, 0.0) for p in params])
    cov = fit.cov_params().loc[params, params].to_numpy()
    estimate, se = float(c @ fit.fe_params.to_numpy()), float(math.sqrt(c @ cov @ c))
    z = sps.norm.ppf(1 - alpha / 2)
    return {"contrast": name, "estimate": estimate, "se": se, "ci_low": estimate - z * se,
            "ci_high": estimate + z * se, "p": float(2 * sps.norm.sf(abs(estimate) / se)) if se > 0 else math.nan,
            "detectable": (z + sps.norm.ppf(power)) * se}


def accuracy_effects(runs: pd.DataFrame, reference_mean: float, alpha: float, power: float) -> pd.DataFrame:
    """The mixed model's contrasts (accuracy points) of one dataset's runs that did not fail."""
    ok = runs[~runs["broke"] & runs["final_test_acc"].notna()].assign(acc=lambda d: 100 * d["final_test_acc"])
    if ok["variant"].nunique() < 2 or ok["seed"].nunique() < 2:
        return pd.DataFrame()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence notes on a near-zero seed variance: the fit is still the REML one
        fit = smf.mixedlm("acc ~ 0 + C(variant)", ok, groups=ok["seed"]).fit(reml=True)
    cells = ok.drop_duplicates("variant").set_index("variant")[CELL]
    param = {v: f"C(variant)[{v}]" for v in cells.index}
    uniform = {m: v for v, (m, s) in cells.iterrows() if s == 0}
    rows = []
    if reference_mean in uniform:
        for mean, variant in sorted(uniform.items()):
            if mean != reference_mean:
                rows.append({"effect": "mean", "dt_mean": mean, "dt_spread": 0.0,
                             **_wald(f"{variant} - {uniform[reference_mean]}",
                                     {param[variant]: 1, param[uniform[reference_mean]]: -1}, fit, alpha, power)})
    spreads = sorted({s for s in cells["dt_spread"] if s > 0})
    for spread in spreads:
        pairs = [(v, uniform[m]) for v, (m, s) in cells.iterrows() if s == spread and m in uniform]
        for variant, base in pairs:
            rows.append({"effect": "spread", "dt_mean": cells.loc[variant, "dt_mean"], "dt_spread": spread,
                         **_wald(f"{variant} - {base}", {param[variant]: 1, param[base]: -1}, fit, alpha, power)})
        if len(pairs) > 1:
            weights: dict[str, float] = {}
            for variant, base in pairs:
                weights[param[variant]] = weights.get(param[variant], 0) + 1 / len(pairs)
                weights[param[base]] = weights.get(param[base], 0) - 1 / len(pairs)
            rows.append({"effect": "spread", "dt_mean": math.nan, "dt_spread": spread,
                         **_wald(f"spread {spread:.3g} averaged over {len(pairs)} means", weights, fit, alpha, power)})
    table = pd.DataFrame(rows)
    if len(table):
        table["p_holm"] = holm(table["p"].to_numpy(float))
        table["n_runs"], table["n_seeds"] = len(ok), ok["seed"].nunique()
        table["seed_sd"] = float(math.sqrt(max(float(fit.cov_re.iloc[0, 0]), 0.0)))
        table["residual_sd"] = float(math.sqrt(fit.scale))
        table["converged"] = bool(fit.converged)
    return table


def failure_counts(runs: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """Failures per cell (k/n) with exact (Clopper-Pearson) and Wilson CIs."""
    rows = []
    for (dataset, variant), group in runs.groupby(["dataset", "variant"], sort=False):
        k, n = int(group["broke"].sum()), len(group)
        rows.append({"dataset": dataset, "variant": variant, **group.iloc[0][CELL].to_dict(), "n_failed": k,
                     "n_runs": n, **binomial_ci(k, n, alpha)})
    return pd.DataFrame(rows)


def failure_model(runs: pd.DataFrame, reference_mean: float, alpha: float) -> pd.DataFrame:
    """Where one dataset's runs failed: odds ratios of failure for each dt mean (against the reference) and each spread
    (against none) from a binomial GLM with both as factors; empty where separation makes it inestimable (a level of
    either factor where every run or no run failed)."""
    data = runs.assign(failed=runs["broke"].astype(float), mean=runs["dt_mean"].map("{:g}".format),
                       spread=runs["dt_spread"].map("{:g}".format))
    if any(data.groupby(factor)["failed"].agg(lambda f: f.min() == f.max()).any() for factor in ("mean", "spread")):
        return pd.DataFrame()
    formula = f"failed ~ C(mean, Treatment('{reference_mean:g}')) + C(spread, Treatment('0'))"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PerfectSeparationWarning)
            fit = smf.glm(formula, data, family=sm.families.Binomial()).fit()
    except (PerfectSeparationError, PerfectSeparationWarning, np.linalg.LinAlgError):
        return pd.DataFrame()
    ci = fit.conf_int(alpha)
    return pd.DataFrame([{"term": term, "odds_ratio": float(np.exp(fit.params[term])),
                          "ci_low": float(np.exp(ci.loc[term, 0])), "ci_high": float(np.exp(ci.loc[term, 1])),
                          "p": float(fit.pvalues[term])} for term in fit.params.index if term != "Intercept"])


def write_factorial(records: Mapping[str, Sequence[str]], shard: Mapping[str, str], outputs: Mapping[str, str],
                    params: Mapping) -> None:
    """The factorial's runs, its effects on accuracy, its failures and where its runs came from."""
    spec = params["factorial"]
    runs = factorial_runs(records, shard, params["declared"], params["cells"], spec["failure"])
    write_provenance(outputs["provenance"], {"runs": runs}, "factorial")
    runs = runs.drop(columns="record")
    write_table(outputs["runs"], runs)
    effects, models = [], []
    for dataset, own in runs.groupby("dataset", sort=True):
        found = accuracy_effects(own, spec["reference_mean"], spec["alpha"], spec["power"])
        effects.append(found.assign(dataset=dataset) if len(found) else found)
        model = failure_model(own, spec["reference_mean"], spec["alpha"])
        models.append(model.assign(dataset=dataset) if len(model) else model)
    write_table(outputs["effects"], _first(pd.concat(effects, ignore_index=True) if effects else pd.DataFrame()))
    write_table(outputs["failures"], failure_counts(runs, spec["alpha"]))
    write_table(outputs["failure_model"], _first(pd.concat(models, ignore_index=True) if models else pd.DataFrame()))


def _first(table: pd.DataFrame) -> pd.DataFrame:
    """``dataset`` as the first column."""
    return table[["dataset", *[c for c in table.columns if c != "dataset"]]] if "dataset" in table else table
