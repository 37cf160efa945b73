"""The robustness tables from the committed robustness shards and this invocation's evaluations (each declared model
once, htsep.records): per model and condition the accuracy and the share of flipped predictions (means over the noise
draws) and the drop from the model's clean accuracy; per variant and condition their means over seeds; and per
contrast and condition the paired difference of the drops, variant minus baseline (negative: the variant loses
less), with its bootstrap CI over seeds, Wilcoxon's p, Holm's p (one family per protocol and contrast: its datasets
and conditions) and the smallest difference the design would find. Models that failed in training (``failed``) are
listed in the runs table and left out of the rest."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ... import paired
from ...files import write_table
from ...records import merge_experiment, write_provenance
from .evaluate import CLEAN
from .plan import KEYS

log = logging.getLogger(__name__)

CONDITION = ["perturbation", "level", "condition"]  # one perturbed evaluation (over its draws)
COLUMNS = {"runs": [*KEYS, "dataset_label", "n_test", "clean_accuracy", "recorded_accuracy", "dt_mean", "dt_uniform"],
           "conditions": [*KEYS, *CONDITION, "draw", "accuracy", "flipped"]}  # what evaluate_model writes


def failed(runs: pd.DataFrame, chance_acc: float) -> pd.Series:
    """Models that failed in training: diverged (no recorded accuracy) or at chance (clean accuracy at or below
    ``chance_acc``). Their drops say nothing about robustness (a network that predicts one class loses nothing)."""
    return runs["recorded_accuracy"].isna() | ~(runs["clean_accuracy"] > chance_acc)


def per_model(runs: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """Per model and condition: accuracy and flipped share (means over draws) and the drop from its clean accuracy."""
    means = rows.groupby([*KEYS, *CONDITION], sort=False, dropna=False)[["accuracy", "flipped"]].mean().reset_index()
    clean = runs[[*KEYS, "dataset_label", "clean_accuracy"]]
    out = means.merge(clean, on=KEYS, validate="many_to_one")
    out["drop"] = out["clean_accuracy"] - out["accuracy"]
    return out[out["perturbation"] != CLEAN].reset_index(drop=True)


def summary(models: pd.DataFrame) -> pd.DataFrame:
    """Per protocol, dataset, variant and condition: seeds, mean accuracy, its s.d., mean drop and flipped share."""
    group = models.groupby(["protocol", "dataset", "dataset_label", "variant", *CONDITION], sort=False, dropna=False)
    return group.agg(n_seeds=("seed", "nunique"), accuracy=("accuracy", "mean"), accuracy_sd=("accuracy", "std"),
                     drop=("drop", "mean"), flipped=("flipped", "mean")).reset_index()


def contrast_row(a: pd.DataFrame, b: pd.DataFrame, spec: Mapping, seed: int) -> dict:
    """The paired comparison of one condition's drops and flipped shares (``a``: variant, ``b``: baseline, by seed)."""
    both = a.merge(b, on="seed", suffixes=("_a", "_b"))
    drop_a, drop_b = both["drop_a"].to_numpy(), both["drop_b"].to_numpy()
    diff = paired.mean_difference(drop_a, drop_b, spec["bootstrap"], spec["ci_level"], seed)
    test = paired.wilcoxon(drop_a, drop_b)
    observed = paired.spread(drop_a, drop_b)
    detectable = np.nan if observed is None else paired.resolution(
        "accuracy", observed, len(both), spec["alpha"], spec["power"], spec["simulations"], seed)
    return {"n_pairs": len(both), "drop_variant": float(np.mean(drop_a)), "drop_baseline": float(np.mean(drop_b)),
            "difference": diff["difference"], "ci_low": diff["ci_low"], "ci_high": diff["ci_high"], "p": test["p"],
            "detectable": detectable,
            "flipped_difference": float(np.mean(both["flipped_a"] - both["flipped_b"])) if len(both) else np.nan}


def effects(models: pd.DataFrame, contrasts: Sequence[Mapping], spec: Mapping) -> pd.DataFrame:
    """Every contrast whose two arms were evaluated, per protocol, dataset and condition, with Holm's p per protocol
    and contrast."""
    rows = []
    cells = models.groupby(["protocol", "dataset", *CONDITION], sort=True, dropna=False)
    for i, ((protocol, dataset, perturbation, level, condition), cell) in enumerate(cells):
        by_variant = {v: g[["seed", "drop", "flipped"]] for v, g in cell.groupby("variant")}
        for c in contrasts:
            if c["variant"] in by_variant and c["baseline"] in by_variant:
                rows.append({"protocol": protocol, "dataset": dataset, **c, "perturbation": perturbation,
                             "level": level, "condition": condition,
                             **contrast_row(by_variant[c["variant"]], by_variant[c["baseline"]], spec,
                                            spec["bootstrap_seed"] + i)})
    table = pd.DataFrame(rows)
    if not len(table):
        log.info("robustness: no contrast has both arms evaluated")
        return pd.DataFrame(columns=["protocol", "dataset", "contrast", "variant", "baseline", *CONDITION, "n_pairs",
                                     "drop_variant", "drop_baseline", "difference", "ci_low", "ci_high", "p",
                                     "p_holm", "detectable", "flipped_difference"])
    table["p_holm"] = table.groupby(["protocol", "contrast"])["p"].transform(lambda p: paired.holm(p.to_numpy()))
    return table


def write_robustness(records: Mapping[str, Sequence[str]], shard: Mapping[str, str], outputs: Mapping[str, str],
                     params: Mapping) -> None:
    """The robustness tables (``outputs``: runs, conditions, summary, effects, provenance) from the committed shards
    ``records`` (table -> paths) and this invocation's ``shard`` (table -> path; empty when it evaluates nothing)."""
    tables = merge_experiment(records, shard, KEYS, params["declared"], "robustness", required=False)
    write_provenance(outputs["provenance"], {"runs": tables["runs"]}, "robustness")
    runs, rows = (tables[name].reindex(columns=list(dict.fromkeys([*tables[name].columns, *COLUMNS[name]])))
                  for name in ("runs", "conditions"))  # the columns are there before any model is evaluated
    gap = (runs["clean_accuracy"] - runs["recorded_accuracy"]).abs().max()
    if gap > 1e-6:
        log.warning("robustness: a clean accuracy differs from the run's recorded test accuracy by up to %.4g", gap)
    runs["failed"] = failed(runs, params["robustness"]["chance_acc"]).astype(bool)
    models = per_model(runs[~runs["failed"]], rows)
    write_table(outputs["runs"], runs.drop(columns="config"))
    write_table(outputs["conditions"], models)
    write_table(outputs["summary"], summary(models))
    write_table(outputs["effects"], effects(models, params["contrasts"], params["robustness"]))

