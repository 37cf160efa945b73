"""The sensitivity tables from the committed sensitivity shards and this invocation's runs (each declared run once,
htsep.records), per dataset and axis, the base point's runs placed on every axis at the protocol's value:

- ``cells``: per level and variant, runs, failures and the mean and s.d. of the final test accuracy;
- ``contrasts``: at each level the declared contrast (heterogeneity at a matched mean) and, at its cell, the positive
  control, each paired by seed (variant minus baseline, points): mean difference with its bootstrap CI, Wilcoxon's
  p, Holm's p (one family per dataset and axis) and the smallest difference the design finds with the stated power;
- ``models``: a linear mixed model of the final accuracy of the runs that did not fail on variant x level with a random
  intercept per seed (statsmodels MixedLM, fitted by ML), and the likelihood-ratio test of the interaction (does the
  variants' difference change along the axis?).
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from scipy import stats as sps

from ... import paired
from ...files import write_table
from ...records import merge, read_shard, write_provenance
from .plan import BASE, KEYS

log = logging.getLogger(__name__)

AXIS_CELL = ["dataset", "axis", "level"]


def on_axes(runs: pd.DataFrame, protocol_values: Mapping[str, float]) -> pd.DataFrame:
    """The runs by axis: each axis's own runs and the base point's runs of the axis's datasets and variants at the
    protocol's value of the axis (``protocol_values``: axis -> value; the base runs appear once per axis)."""
    own = runs[runs["axis"] != BASE]
    base = runs[runs["axis"] == BASE]
    parts = [own]
    for axis, value in protocol_values.items():
        trained = own[own["axis"] == axis][["dataset", "variant"]].drop_duplicates()
        parts.append(base.merge(trained, on=["dataset", "variant"]).assign(axis=axis, level=float(value),
                                                                          base_point=True))
    out = pd.concat(parts, ignore_index=True)
    out["base_point"] = out["base_point"].fillna(False).astype(bool) if "base_point" in out else False
    return out.sort_values([*AXIS_CELL, "variant", "seed"], ignore_index=True)


def cells(runs: pd.DataFrame) -> pd.DataFrame:
    """Per dataset, axis, level and variant: runs, failures, mean and s.d. of the final test accuracy (runs that did
    not fail)."""
    rows = []
    for (dataset, axis, level, variant), group in runs.groupby([*AXIS_CELL, "variant"], sort=True):
        ok = group.loc[~group["broke"], "final_test_acc"]
        rows.append({"dataset": dataset, "dataset_label": group["dataset_label"].iloc[0], "axis": axis,
                     "level": level, "variant": variant, "base_point": bool(group["base_point"].any()),
                     "n_runs": len(group), "n_failed": int(group["broke"].sum()), "accuracy": ok.mean(),
                     "accuracy_sd": ok.std(ddof=1)})
    return pd.DataFrame(rows)


def paired_row(cell: pd.DataFrame, variant: str, baseline: str, spec: Mapping, seed: int) -> dict:
    """One paired comparison of two variants' final accuracies in a cell (a failed run's seed drops out)."""
    accuracy = cell.assign(final_test_acc=cell["final_test_acc"].where(~cell["broke"]))
    wide = accuracy.pivot_table(index="seed", columns="variant", values="final_test_acc", dropna=False)
    a = wide[variant].to_numpy(float) if variant in wide else np.array([])
    b = wide[baseline].to_numpy(float) if baseline in wide else np.array([])
    if len(a) != len(b):
        a, b = np.array([]), np.array([])
    diff = paired.mean_difference(a, b, spec["bootstrap"], spec["ci_level"], seed)
    test = paired.wilcoxon(a, b)
    observed = paired.spread(a, b)
    detectable = math.nan if observed is None else paired.resolution(
        "accuracy", observed, observed["n_pairs"], spec["alpha"], spec["power"], spec["simulations"], seed)
    return {"variant": variant, "baseline": baseline, "n_pairs": diff["n_pairs"], "difference": diff["difference"],
            "ci_low": diff["ci_low"], "ci_high": diff["ci_high"], "p": test["p"], "detectable": detectable}


def contrasts(runs: pd.DataFrame, spec: Mapping) -> pd.DataFrame:
    """The declared contrast at every level of every axis and the positive control at its cell, with Holm's p per
    dataset and axis."""
    rows = []
    contrast, control = spec["contrast"], spec["positive_control"]
    for i, ((dataset, axis, level), cell) in enumerate(runs.groupby(AXIS_CELL, sort=True)):
        where = {"dataset": dataset, "axis": axis, "level": level}
        rows.append({**where, "kind": "contrast",
                     **paired_row(cell, contrast["variant"], contrast["baseline"], spec, spec["bootstrap_seed"] + i)})
        if (dataset, axis, float(level)) == (control["dataset"], control["axis"], float(control["level"])):
            rows.append({**where, "kind": "positive_control",
                         **paired_row(cell, control["variant"], control["baseline"], spec, spec["bootstrap_seed"] + i)})
    columns = [*AXIS_CELL, "kind", "variant", "baseline", "n_pairs", "difference", "ci_low", "ci_high", "p",
               "detectable", "p_holm"]
    table = pd.DataFrame(rows, columns=columns[:-1])
    table["p_holm"] = np.nan
    for _, family in table.groupby(["dataset", "axis", "kind"]):
        table.loc[family.index, "p_holm"] = paired.holm(family["p"].to_numpy(float))
    return table


def interaction_tests(runs: pd.DataFrame) -> pd.DataFrame:
    """Per dataset and axis: the mixed model's likelihood-ratio test of variant x level against variant + level (a
    random intercept per seed, runs that did not fail, ML fits); NaN where a fit fails."""
    rows = []
    for (dataset, axis), group in runs[~runs["broke"]].groupby(["dataset", "axis"], sort=True):
        data = group.assign(accuracy=100 * group["final_test_acc"], level_name=group["level"].map("{:g}".format))
        row = {"dataset": dataset, "axis": axis, "n_runs": len(data), "n_levels": data["level"].nunique(),
               "n_variants": data["variant"].nunique(), "lr_statistic": math.nan, "df": math.nan, "p": math.nan}
        if row["n_levels"] > 1 and row["n_variants"] > 1 and data["seed"].nunique() > 1:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    fits = [smf.mixedlm(f"accuracy ~ {terms}", data, groups=data["seed"]).fit(reml=False)
                            for terms in ("C(variant) * C(level_name)", "C(variant) + C(level_name)")]
                statistic = max(2 * (fits[0].llf - fits[1].llf), 0.0)
                df = len(fits[0].fe_params) - len(fits[1].fe_params)
                row |= {"lr_statistic": statistic, "df": df, "p": float(sps.chi2.sf(statistic, df))}
            except (ValueError, np.linalg.LinAlgError) as err:
                log.warning("sensitivity %s/%s: mixed model not fitted (%s)", dataset, axis, err)
        rows.append(row)
    return pd.DataFrame(rows, columns=["dataset", "axis", "n_runs", "n_levels", "n_variants", "lr_statistic", "df",
                                       "p"])


def write_sensitivity(records: Sequence[str], shard: Sequence[str], outputs: Mapping[str, str],
                      params: Mapping) -> None:
    """The sensitivity tables (``outputs``: runs, cells, contrasts, models, provenance) from the committed shards
    ``records`` and this invocation's ``shard`` (empty when it trains nothing)."""
    runs = merge(records, read_shard(shard[0], KEYS, local=True) if shard else None, KEYS, params["declared"],
                 "sensitivity")
    write_provenance(outputs["provenance"], {"runs": runs}, "sensitivity")
    spec = params["sensitivity"]
    if len(runs):
        runs = on_axes(runs.drop(columns="record"), params["protocol_values"])
        runs["broke"] = runs["broke"].astype(bool)
    else:
        runs = pd.DataFrame(columns=[*KEYS, "dataset_label", "final_test_acc", "broke", "base_point"])
    write_table(outputs["runs"], runs.drop(columns=[c for c in ("config",) if c in runs]))
    write_table(outputs["cells"], cells(runs) if len(runs) else pd.DataFrame(
        columns=[*AXIS_CELL, "variant", "n_runs", "n_failed", "accuracy", "accuracy_sd"]))
    write_table(outputs["contrasts"], contrasts(runs, spec))
    write_table(outputs["models"], interaction_tests(runs))
