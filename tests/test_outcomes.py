"""Outcomes of sweep runs (htsep.outcomes): how each run broke, read from its summary.json and metrics.csv."""

import json
import math

import pandas as pd
import pytest

from htsep.experiments.grid.stats import run_measures
from htsep.outcomes import accuracy_drops, binomial_ci, is_collapse, rates, run_outcomes

FAILURE = {"criteria": ["diverged", "chance", "never_predicted", "collapse"], "chance_acc": 0.2,
           "collapse_drop": 0.05}


def write_run(folder, acc, diverged=False, never_predicted=None):
    folder.mkdir(parents=True)
    epochs = len(acc)
    metrics = pd.DataFrame({"epoch": range(1, epochs + 1), "test_acc": acc, "diverged": [False] * epochs,
                            "classes_never_predicted": never_predicted or [0] * epochs,
                            "free_residual": 1e-5, "relax_steps_to_tol": 30.0, "relax_unconverged_frac": 0.1,
                            "relax_oscillation": 0.01})
    if diverged:
        metrics.loc[epochs - 1, ["test_acc", "diverged"]] = [math.nan, True]
    metrics.to_csv(folder / "metrics.csv", index=False)
    summary = {"protocol": "calibrated", "dataset": "synthetic", "dataset_label": "Synthetic",
               "variant": folder.parent.name, "seed": 0,
               "final_test_acc": None if diverged else acc[-1], "best_test_acc": max(a for a in acc if a == a),
               "epochs_completed": epochs, "diverged": diverged, "diverged_epoch": epochs if diverged else None,
               "wall_seconds": 1.0,
               "dt_stats": [{"layer": 1, "mean": 0.3, "std": 0.1}, {"layer": 2, "mean": 0.2, "std": 0.0}],
               "config": {"model": {"sizes": [4, 3, 1]}, "sweep": {"name": "frontier_sweep", "axis": "lr", "level": 2}}}
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder / "summary.json"


def test_run_outcomes_classify_failure_kind_and_onset(tmp_path):
    paths = [write_run(tmp_path / "fine" / "s", [0.5, 0.7, 0.8], never_predicted=[1, 0, 0]),
             write_run(tmp_path / "collapsed" / "s", [0.5, 0.8, 0.7]),
             write_run(tmp_path / "chance" / "s", [0.16, 0.25, 0.15, 0.15]),
             write_run(tmp_path / "dead" / "s", [0.5, 0.6, 0.7, 0.7], never_predicted=[1, 0, 1, 1]),
             write_run(tmp_path / "diverged" / "s", [0.5, 0.6, math.nan], diverged=True)]
    out = run_outcomes(paths, FAILURE).set_index("variant")
    assert out["broke"].to_dict() == {"fine": False, "collapsed": True, "chance": True, "dead": True,
                                      "diverged": True}
    assert out["failure_kind"].fillna("none").to_dict() == {
        "fine": "none", "collapsed": "collapse", "chance": "chance", "dead": "never_predicted", "diverged": "diverged"}
    # chance: from epoch 3 on (epoch 2 was above); dead class: from epoch 3 on (predicted again at epoch 2)
    assert out.loc["chance", "onset_chance"] == 3 and out.loc["dead", "onset_never_predicted"] == 3
    assert out.loc["collapsed", "onset_collapse"] == 3 and out.loc["collapsed", "max_drop"] == pytest.approx(0.1)
    assert out.loc["diverged", "failure_epoch"] == 3 and math.isnan(out.loc["diverged", "onset_chance"])
    assert out.loc["chance", "onset_collapse"] == 3  # 0.25 -> 0.15 is also a drop above 5 points ...
    assert out.loc["chance", "failure_kind"] == "chance"  # ... tied at epoch 3: the first criterion listed wins
    assert math.isnan(out.loc["fine", "onset_never_predicted"])  # a class unpredicted at epoch 1 only
    assert out.loc["fine", "level"] == 2 and out.loc["fine", "sweep_name"] == "frontier_sweep"
    # dt pooled over the 3 + 1 neurons: mean (3 * 0.3 + 0.2) / 4
    assert out.loc["fine", "dt_mean"] == pytest.approx(0.275)
    only_diverged = run_outcomes(paths, {**FAILURE, "criteria": ["diverged"]}).set_index("variant")
    assert only_diverged["broke"].sum() == 1 and "onset_chance" not in only_diverged
    table = rates(out.reset_index(), ["level"], 0.05).iloc[0]
    assert (table["n_broke"], table["n_kind_collapse"], table["n_collapse"], table["n_never_predicted"]) == (4, 1, 2, 1)


def test_binomial_ci_known_values():
    none = binomial_ci(0, 5, 0.05)  # exact interval for k = 0: [0, 1 - (alpha/2)^(1/n)]
    assert none["rate"] == 0 and none["cp_low"] == 0 and none["cp_high"] == pytest.approx(1 - 0.025 ** (1 / 5))
    assert none["wilson_low"] == pytest.approx(0, abs=1e-12) and 0 < none["wilson_high"] < none["cp_high"]
    half = binomial_ci(5, 10, 0.05)
    assert half["rate"] == 0.5 and half["cp_low"] == pytest.approx(1 - half["cp_high"])
    assert math.isnan(binomial_ci(0, 0, 0.05)["rate"])


def test_one_collapse_definition_for_sweeps_and_the_grid(tmp_path):
    """A drop of exactly the threshold (as k/N accuracies give it, with round-off) is no collapse anywhere; a run
    with one finite epoch has no largest drop (NaN) in the sweep tables and in the grid's measures alike."""
    at_threshold = [0.93, 0.88]  # 0.93 - 0.88 = 0.05000000000000004 in floating point
    assert accuracy_drops(at_threshold)[0] > 0.05 and not is_collapse(accuracy_drops(at_threshold), 0.05).any()
    paths = [write_run(tmp_path / "edge" / "s", at_threshold), write_run(tmp_path / "short" / "s", [0.9])]
    out = run_outcomes(paths, FAILURE).set_index("variant")
    assert not out.loc["edge", "broke"] and math.isnan(out.loc["short", "max_drop"])
    runs = pd.DataFrame({"protocol": "lab", "dataset": "synthetic", "dataset_label": "Synthetic",
                         "variant": ["edge", "short"], "seed": 0, "final_test_acc": [0.88, 0.9],
                         "best_test_acc": [0.93, 0.9], "final_train_acc": 0.9, "diverged": False,
                         "diverged_epoch": pd.NA, "wall_seconds": 1.0})
    epochs = pd.DataFrame({"protocol": "lab", "dataset": "synthetic", "variant": ["edge", "edge", "short"], "seed": 0,
                           "epoch": [1, 2, 1], "test_acc": [*at_threshold, 0.9], "diverged": False,
                           "classes_never_predicted": 0, "free_residual": 1e-5})
    grid = run_measures(runs, epochs, 0.05).set_index("variant")
    assert not grid.loc["edge", "collapsed"] and grid.loc["edge", "max_drop"] == out.loc["edge", "max_drop"]
    assert math.isnan(grid.loc["short", "max_drop"])
