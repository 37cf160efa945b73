"""The preregistered primary tests of the confirmatory runs, paired by seed (htsep.paired), per protocol, dataset and
contrast (variant minus baseline):

- accuracy: Wilcoxon signed-rank of the final test accuracies, the mean paired difference with its bootstrap CI, and
  TOST against the equivalence margin behind any "no effect" verdict;
- spread: Pitman-Morgan, the s.d. ratio with its bootstrap CI (equivalent when the CI lies within the margin);
- a verdict of 'higher' or 'lower' needs the Holm-adjusted test and the effect's CI to agree;
- failures: McNemar's exact test of the runs that failed (the frontier's failure criteria, htsep.outcomes).

A contrast is tested in every protocol of run_protocols, its baseline under that protocol or under its own
(``baseline_protocol``). The p-values of the three tests of every contrast and dataset of one protocol are one Holm
family (a contrast may name another family, e.g. ``secondary``, tested apart), the family declared: while the runs are
incomplete, a (dataset, contrast) with no recorded pair enters it with p = 1, so an interim test is held to the
declared family's levels. Each row carries
its resolution: the smallest effect the design finds with the preregistered power at the Holm-adjusted level, from the
observed spread of the paired differences (simulated: htsep.paired.detectable).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ... import paired
from ...files import write_table
from ...records import merge, read_shard, write_provenance
from .plan import KEYS, family

TESTS = ("accuracy", "spread", "failures")


def _arms(variant_runs: pd.DataFrame, baseline_runs: pd.DataFrame) -> pd.DataFrame:
    """One row per seed run in both arms (each arm's runs of one protocol, dataset and variant): final accuracy and
    failure of each."""
    columns = ["final_test_acc", "broke"]
    own = pd.merge(variant_runs[["seed", *columns]], baseline_runs[["seed", *columns]], on="seed",
                   suffixes=("_a", "_b")).set_index("seed").sort_index()
    own = own.dropna(subset=["broke_a", "broke_b"])
    return pd.DataFrame({"a": own["final_test_acc_a"], "b": own["final_test_acc_b"],
                         "failed_a": own["broke_a"].astype(bool), "failed_b": own["broke_b"].astype(bool)})


def contrast_rows(arms: pd.DataFrame, name: str, variant: str, baseline: str, spec: Mapping) -> list[dict]:
    """The three primary tests (and TOST) of one contrast on one (protocol, dataset), from its paired ``arms``."""
    a, b = arms["a"].to_numpy(float), arms["b"].to_numpy(float)
    boot, level, seed = spec["bootstrap"], spec["ci_level"], spec["bootstrap_seed"]
    key = {"contrast": name, "variant": variant, "baseline": baseline}
    accuracy = paired.wilcoxon(a, b) | paired.mean_difference(a, b, boot, level, seed)
    tost = paired.tost(a, b, spec["equivalence"]["accuracy"])
    spread = paired.pitman_morgan(a, b, boot, level, seed)
    failures = paired.mcnemar_exact(arms["failed_a"], arms["failed_b"])
    return [
        {**key, "test": "accuracy", "statistic": accuracy["statistic"], "p": accuracy["p"],
         "effect": accuracy["difference"], "effect_name": "mean difference", "ci_low": accuracy["ci_low"],
         "ci_high": accuracy["ci_high"], "n_pairs": accuracy["n_pairs"], "p_equivalence": tost["p"],
         "margin": tost["margin"]},
        {**key, "test": "spread", "statistic": spread["statistic"], "p": spread["p"], "effect": spread["sd_ratio"],
         "effect_name": "s.d. ratio", "ci_low": spread["ci_low"], "ci_high": spread["ci_high"],
         "n_pairs": spread["n_pairs"], "margin": spec["equivalence"]["sd_ratio"]},
        {**key, "test": "failures", "statistic": math.nan, "p": failures["p"],
         "effect": failures["only_a"] - failures["only_b"], "effect_name": "failed only in variant minus only in "
                                                                           "baseline", "n_pairs": failures["n_pairs"],
         "failed_variant": int(arms["failed_a"].sum()), "failed_baseline": int(arms["failed_b"].sum())},
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


def primary_tests(runs: pd.DataFrame, spec: Mapping, protocols: Sequence[str],
                  datasets: Sequence[str]) -> pd.DataFrame:
    """Every primary test of the runs (one row per protocol in ``protocols``, dataset, contrast and test),
    Holm-adjusted per protocol and family over the ``datasets`` declared, with its verdict and resolution (no row
    before any confirmatory run is recorded)."""
    runs = runs if len(runs) else pd.DataFrame(columns=[*KEYS, "dataset_label", "final_test_acc", "broke"])
    rows, spreads = [], {}  # (protocol, dataset, contrast) -> the observed paired spread its resolution needs
    for (dataset, label), own in runs.groupby(["dataset", "dataset_label"], sort=True):
        for protocol in protocols:
            if not (own["protocol"] == protocol).any():
                continue
            for name, contrast in spec["contrasts"].items():
                variant, baseline = contrast["variant"], contrast["baseline"]
                arm = own[(own["protocol"] == protocol) & (own["variant"] == variant)]
                base = own[(own["protocol"] == (contrast.get("baseline_protocol") or protocol))
                           & (own["variant"] == baseline)]
                arms = _arms(arm, base)
                spreads[protocol, dataset, name] = paired.spread(arms["a"], arms["b"])
                rows += [{"protocol": protocol, "dataset": dataset, "dataset_label": label, "family": family(contrast),
                          "baseline_protocol": contrast.get("baseline_protocol") or protocol,
                          **row} for row in contrast_rows(arms, name, variant, baseline, spec)]
    columns = ["protocol", "dataset", "dataset_label", "family", "contrast", "variant", "baseline",
               "baseline_protocol", "test", "statistic", "p", "p_holm", "effect", "effect_name", "ci_low", "ci_high",
               "n_pairs", "p_equivalence", "margin", "failed_variant", "failed_baseline", "detectable", "verdict"]
    table = pd.DataFrame(rows, columns=[c for c in columns if c not in ("p_holm", "detectable", "verdict")])
    undeclared = sorted(set(table["dataset"]) - set(datasets))
    if undeclared:
        raise ValueError(f"confirmatory runs of datasets {undeclared} outside the declared {list(datasets)}")
    declared = Counter(family(c) for c in spec["contrasts"].values())  # family -> contrasts
    # the declared family: a test of a cell short of pairs that has no p yet, or no row yet, enters with p = 1
    incomplete = table["p"].isna() & (table["n_pairs"] < len(spec["seeds"]))
    held = table["p"].mask(incomplete, 1.0)
    family_p = {key: np.concatenate([held[members.index].to_numpy(float),
                                     np.ones(len(datasets) * len(TESTS) * declared[key[1]] - len(members))])
                for key, members in table.groupby(["protocol", "family"])}
    table["p_holm"] = np.nan
    for key, members in table.groupby(["protocol", "family"]):
        table.loc[members.index, "p_holm"] = paired.holm(family_p[key])[:len(members)]
    table["verdict"] = [verdict(row, spec["alpha"]) for _, row in table.iterrows()]
    table["detectable"] = np.nan
    for key, members in table.groupby(["protocol", "family"]):
        level = spec["alpha"] / max(int(np.isfinite(family_p[key]).sum()), 1)  # Holm's strictest step
        for i, row in members[members["test"].isin(["accuracy", "spread"])].iterrows():
            observed = spreads[row["protocol"], row["dataset"], row["contrast"]]
            table.loc[i, "detectable"] = math.nan if observed is None else paired.resolution(
                row["test"], observed, observed["n_pairs"], level, spec["power"], spec["simulations"],
                spec["bootstrap_seed"])
    return table[columns]


def write_primary(records: Sequence[str], shard: Sequence[str], outputs: Mapping[str, str], params: Mapping) -> None:
    """The primary tests from the committed confirmatory shards and this invocation's, each declared run once
    (htsep.records), and where the runs came from."""
    runs = merge(records, read_shard(shard[0], KEYS, local=True) if shard else None, KEYS, params["declared"],
                 "confirmatory")
    write_provenance(outputs["provenance"], {"runs": runs}, "confirmatory")
    runs = runs.drop(columns="record")
    write_table(outputs["runs"], runs)
    write_table(outputs["tests"], primary_tests(runs, params["preregistration"], params["protocols"],
                                                     params["datasets"]))
