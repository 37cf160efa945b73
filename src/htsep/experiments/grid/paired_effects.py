"""The grid's paired effects: every variant against each uniform baseline it is compared with (``stats.comparisons``),
paired by seed (the same initial weights and batch order; htsep.paired), per (protocol, dataset):

- accuracy: the mean difference of final test accuracy (variant minus baseline) with its bootstrap CI, Wilcoxon's
  signed-rank test;
- spread: the ratio of the s.d.s across seeds (variant / baseline) with its bootstrap CI, the Pitman-Morgan test;
- failures: unstable runs (collapsed or diverged, ``stats.run_measures``), McNemar's exact test.

The p-values of one protocol are one Holm family. Each accuracy and spread test carries its resolution: the smallest
effect it finds with ``POWER`` at Holm's strictest level, simulated from the observed spread of the pair
(htsep.paired.resolution; NaN: none within htsep.paired.EFFECTS). The grid's seeds make these effects exploratory;
the preregistered confirmatory tests are htsep.experiments.confirmatory.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from ... import paired
from ...files import read_table, write_table
from .stats import comparisons, run_measures, settings

POWER = 0.8  # the power a resolution is stated for
TESTS = {"accuracy": 0.0, "spread": 1.0, "failures": 0.0}  # each test's effect of no difference
COLUMNS = ["protocol", "dataset", "dataset_label", "variant", "baseline", "n_pairs",
           "accuracy_difference", "accuracy_ci_low", "accuracy_ci_high", "accuracy_statistic", "accuracy_p",
           "accuracy_p_holm", "accuracy_resolution", "accuracy_verdict",
           "spread_sd_ratio", "spread_ci_low", "spread_ci_high", "spread_statistic", "spread_p", "spread_p_holm",
           "spread_resolution", "spread_verdict",
           "failures_n_pairs", "failures_variant", "failures_baseline", "failures_only_variant",
           "failures_only_baseline", "failures_p", "failures_p_holm", "failures_verdict", "resolution_alpha"]


def verdict(p: float, p_holm: float, effect: float, null: float, alpha: float) -> str:
    """'higher' or 'lower' (the variant's effect, Holm-adjusted p below ``alpha``), 'inconclusive' otherwise,
    'untestable' without a p-value."""
    if not math.isfinite(p):
        return "untestable"
    if p_holm < alpha:
        return "higher" if effect > null else "lower"
    return "inconclusive"


def arms(measures: pd.DataFrame, variant: str, baseline: str) -> pd.DataFrame:
    """One row per seed run in both arms: final test accuracy (NaN if diverged) and instability of each."""
    own = measures.set_index(["seed", "variant"])[["final_test_acc", "unstable"]].unstack("variant")
    own = own.dropna(subset=[("unstable", variant), ("unstable", baseline)])
    return pd.DataFrame({"a": own[("final_test_acc", variant)].astype(float),
                         "b": own[("final_test_acc", baseline)].astype(float),
                         "failed_a": own[("unstable", variant)].astype(bool),
                         "failed_b": own[("unstable", baseline)].astype(bool)})


def comparison(pair: pd.DataFrame, a: Mapping) -> dict:
    """The three paired tests of one variant against one baseline (before Holm)."""
    x, y = pair["a"].to_numpy(float), pair["b"].to_numpy(float)
    boot, level, seed = int(a["bootstrap"]), a["ci_level"], a["bootstrap_seed"]
    accuracy = paired.wilcoxon(x, y) | paired.mean_difference(x, y, boot, level, seed)
    spread = paired.pitman_morgan(x, y, boot, level, seed)
    failures = paired.mcnemar_exact(pair["failed_a"], pair["failed_b"])
    return {"n_pairs": accuracy["n_pairs"],
            "accuracy_difference": accuracy["difference"], "accuracy_ci_low": accuracy["ci_low"],
            "accuracy_ci_high": accuracy["ci_high"], "accuracy_statistic": accuracy["statistic"],
            "accuracy_p": accuracy["p"],
            "spread_sd_ratio": spread["sd_ratio"], "spread_ci_low": spread["ci_low"],
            "spread_ci_high": spread["ci_high"], "spread_statistic": spread["statistic"], "spread_p": spread["p"],
            "failures_n_pairs": failures["n_pairs"], "failures_variant": int(pair["failed_a"].sum()),
            "failures_baseline": int(pair["failed_b"].sum()), "failures_only_variant": failures["only_a"],
            "failures_only_baseline": failures["only_b"], "failures_p": failures["p"]}


def paired_effects(measures: pd.DataFrame, analysis: Mapping) -> pd.DataFrame:
    """One row per (protocol, dataset, variant, baseline) of the EP runs' measures (``stats.run_measures``): the
    paired tests, Holm-adjusted within each protocol, their verdicts and resolutions."""
    a = settings(analysis)
    rows, observed = [], []
    for (protocol, dataset, label), own in measures.groupby(["protocol", "dataset", "dataset_label"], sort=True):
        for variant, baseline in comparisons(list(own["variant"].unique()), a):
            pair = arms(own, variant, baseline)
            rows.append({"protocol": protocol, "dataset": dataset, "dataset_label": label, "variant": variant,
                         "baseline": baseline, **comparison(pair, a)})
            observed.append(paired.spread(pair["a"], pair["b"]))
    table = pd.DataFrame(rows).reindex(columns=COLUMNS)
    holm = [f"{test}_p_holm" for test in TESTS]
    for _, family in table.groupby("protocol", sort=False):
        p = family[[f"{test}_p" for test in TESTS]].to_numpy(float)
        table.loc[family.index, holm] = paired.holm(p.ravel()).reshape(p.shape)
        table.loc[family.index, "resolution_alpha"] = a["alpha"] / max(int(np.isfinite(p).sum()), 1)
    effects = {"accuracy": table["accuracy_difference"], "spread": table["spread_sd_ratio"],
               "failures": table["failures_only_variant"] - table["failures_only_baseline"]}
    for test, null in TESTS.items():
        table[f"{test}_verdict"] = [verdict(p, p_holm, effect, null, a["alpha"]) for p, p_holm, effect in
                                    zip(table[f"{test}_p"], table[f"{test}_p_holm"], effects[test], strict=True)]
    for test in ("accuracy", "spread"):
        table[f"{test}_resolution"] = [
            math.nan if spread is None else paired.resolution(test, spread, spread["n_pairs"], level, POWER,
                                                              int(a["simulations"]), a["bootstrap_seed"])
            for spread, level in zip(observed, table["resolution_alpha"], strict=True)]
    return table


def write_paired(inputs: Mapping[str, str], output: str, analysis: Mapping) -> None:
    """One protocol's paired.csv from its runs and epochs tables."""
    runs, epochs = read_table(inputs["runs"], "runs table"), read_table(inputs["epochs"], "epochs table")
    write_table(output, paired_effects(run_measures(runs, epochs, settings(analysis)["collapse_drop"]), analysis))
