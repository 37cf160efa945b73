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

from collections import Counter
from collections.abc import Mapping, Sequence

import pandas as pd

from ... import paired
from ...files import write_table
from ...paired import TESTS, arms, contrast_tests
from ...records import merge, read_shard, write_provenance
from .plan import KEYS, family


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
                pair = arms(arm, base)
                spreads[protocol, dataset, name] = paired.spread(pair["a"], pair["b"])
                rows += [{"protocol": protocol, "dataset": dataset, "dataset_label": label, "family": family(contrast),
                          "baseline_protocol": contrast.get("baseline_protocol") or protocol,
                          **row} for row in contrast_tests(pair, name, variant, baseline, spec)]
    columns = ["protocol", "dataset", "dataset_label", "family", "contrast", "variant", "baseline",
               "baseline_protocol", "test", "statistic", "p", "p_holm", "effect", "effect_name", "ci_low", "ci_high",
               "n_pairs", "p_equivalence", "margin", "failed_variant", "failed_baseline", "detectable", "verdict"]
    table = pd.DataFrame(rows, columns=[c for c in columns if c not in ("p_holm", "detectable", "verdict")])
    undeclared = sorted(set(table["dataset"]) - set(datasets))
    if undeclared:
        raise ValueError(f"confirmatory runs of datasets {undeclared} outside the declared {list(datasets)}")
    declared = Counter(family(c) for c in spec["contrasts"].values())  # family -> contrasts
    # the declared family: a test of a cell short of pairs that has no p yet, or no row yet, enters with p = 1
    held = table["p"].mask(table["p"].isna() & (table["n_pairs"] < len(spec["seeds"])), 1.0)
    return paired.decide(table, held, ["protocol", "family"], lambda key: len(datasets) * len(TESTS) * declared[key[1]],
                         spreads, lambda row: (row["protocol"], row["dataset"], row["contrast"]), spec)[columns]


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
