"""The depth tables from the committed depth shards and this invocation's runs (each declared run once,
htsep.records), per dataset and T1:

- ``cells``: per arm, runs, failures (the frontier's criteria, htsep.outcomes) and the mean and s.d. of the final
  test accuracy of the runs that did not fail;
- ``tests``: each declared contrast (variant minus baseline, paired by seed) with the baselines issue's three tests
  (htsep.paired.contrast_tests: accuracy with TOST, spread, failures), Holm-adjusted over the whole
  experiment (its datasets, T1 levels, contrasts and tests), each with its verdict and resolution;
- ``residuals``: the free phase's residual per layer over the epochs, mean over the seeds of each arm.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from ... import paired
from ...files import read_run, write_table
from ...outcomes import run_outcomes
from ...paired import TESTS, arms, contrast_tests
from ...records import merge_experiment, write_provenance
from .plan import KEYS, hidden_label

CELL = ["dataset", "free_steps"]
LAYER_RESIDUAL = re.compile(r"^free_residual_l(\d+)$")


def write_shard(summary_paths: Iterable[str | Path], outputs: Mapping[str, str], failure: Mapping) -> None:
    """This invocation's depth runs as a shard: ``runs`` (htsep.outcomes.run_outcomes, keyed by KEYS) and ``epochs``
    (each run's metrics rows with its keys), both with the network's ``hidden`` sizes (e.g. '256-256')."""
    paths = list(map(Path, summary_paths))
    runs, epochs, hidden = run_outcomes(paths, failure, KEYS), [], []
    for path in paths:
        summary, metrics = read_run(path)
        hidden.append(hidden_label(summary["config"]))
        epochs.append(metrics.assign(dataset=summary["dataset"], dataset_label=summary["dataset_label"],
                                     free_steps=summary["config"]["training"]["free_steps"],
                                     variant=summary["variant"], seed=summary["seed"], hidden=hidden[-1]))
    runs.insert(len(KEYS), "hidden", hidden)
    epochs = pd.concat(epochs, ignore_index=True) if epochs else pd.DataFrame(columns=[*KEYS, "epoch"])
    write_table(outputs["runs"], runs)
    write_table(outputs["epochs"], epochs[[*KEYS, *[c for c in epochs.columns if c not in KEYS]]])


def cells(runs: pd.DataFrame) -> pd.DataFrame:
    """Per dataset, T1 and arm: runs, failures, mean and s.d. of the final accuracy of the runs that did not fail,
    and the free phase's share of unconverged probe samples at the end."""
    rows = []
    for (dataset, free_steps, variant), group in runs.groupby([*CELL, "variant"], sort=True):
        ok = group.loc[~group["broke"], "final_test_acc"]
        rows.append({"dataset": dataset, "dataset_label": group["dataset_label"].iloc[0], "free_steps": free_steps,
                     "variant": variant, "n_runs": len(group), "n_failed": int(group["broke"].sum()),
                     "accuracy": ok.mean(), "accuracy_sd": ok.std(ddof=1),
                     "unconverged_frac": group["relax_unconverged_frac"].mean()})
    return pd.DataFrame(rows, columns=["dataset", "dataset_label", "free_steps", "variant", "n_runs", "n_failed",
                                       "accuracy", "accuracy_sd", "unconverged_frac"])


def family_size(datasets: Sequence[str], levels: Sequence[int], contrasts: Mapping) -> int:
    """The tests declared in the depth experiment's one Holm family: every contrast's tests at every dataset and T1."""
    return len(datasets) * len(levels) * len(contrasts) * len(TESTS)


def paired_tests(runs: pd.DataFrame, spec: Mapping, levels: Sequence[int], datasets: Sequence[str]) -> pd.DataFrame:
    """Every contrast at every (dataset, T1) with its three paired tests, Holm over the declared family (a test not
    yet computable enters with p = 1), verdicts and resolutions at Holm's strictest level."""
    rows, spreads = [], {}
    for (dataset, free_steps), own in runs.groupby(CELL, sort=True):
        for name, contrast in spec["contrasts"].items():
            pair = arms(own[own["variant"] == contrast["variant"]], own[own["variant"] == contrast["baseline"]])
            spreads[dataset, free_steps, name] = paired.spread(pair["a"], pair["b"])
            rows += [{"dataset": dataset, "dataset_label": own["dataset_label"].iloc[0], "free_steps": free_steps,
                      **row} for row in contrast_tests(pair, name, contrast["variant"], contrast["baseline"], spec)]
    columns = ["dataset", "dataset_label", "free_steps", "contrast", "variant", "baseline", "test", "statistic", "p",
               "p_holm", "effect", "effect_name", "ci_low", "ci_high", "n_pairs", "p_equivalence", "margin",
               "failed_variant", "failed_baseline", "detectable", "verdict"]
    table = pd.DataFrame(rows, columns=[c for c in columns if c not in ("p_holm", "detectable", "verdict")])
    family = family_size(datasets, levels, spec["contrasts"])
    return paired.decide(table, table["p"].fillna(1.0), [], lambda _: family, spreads,
                         lambda row: (row["dataset"], row["free_steps"], row["contrast"]), spec)[columns]


def residuals(epochs: pd.DataFrame) -> pd.DataFrame:
    """Per dataset, T1, arm, epoch and layer: the mean over seeds of the free phase's residual in that layer."""
    layers = {int(m.group(1)): c for c in epochs.columns if (m := LAYER_RESIDUAL.match(c))}
    if not len(epochs) or not layers:
        return pd.DataFrame(columns=[*CELL, "variant", "epoch", "layer", "residual"])
    long = epochs.melt(id_vars=[*CELL, "variant", "seed", "epoch"], value_vars=list(layers.values()),
                       var_name="column", value_name="residual")
    long["layer"] = long["column"].map({c: l for l, c in layers.items()})
    return long.groupby([*CELL, "variant", "epoch", "layer"], as_index=False)["residual"].mean()


def write_depth(records: Mapping[str, Sequence[str]], shard: Mapping[str, str], outputs: Mapping[str, str],
                params: Mapping) -> None:
    """The depth tables (``outputs``: runs, cells, tests, residuals, provenance) from the committed shards and this
    invocation's (``shard``: table -> path, empty when it trains nothing)."""
    tables = merge_experiment(records, shard, KEYS, params["declared"], "depth", required=False)
    write_provenance(outputs["provenance"], {"runs": tables["runs"]}, "depth")
    runs = tables["runs"].drop(columns="record")
    if len(runs):
        runs["broke"] = runs["broke"].astype(bool)
    else:
        runs = pd.DataFrame(columns=[*KEYS, "dataset_label", "final_test_acc", "broke", "relax_unconverged_frac"])
    write_table(outputs["runs"], runs.drop(columns=[c for c in ("config",) if c in runs]))
    write_table(outputs["cells"], cells(runs))
    levels = list(params["levels"].values())
    write_table(outputs["tests"], paired_tests(runs, params["depth"], levels, params["datasets"]))
    write_table(outputs["residuals"], residuals(tables["epochs"]))
