"""Outcomes of sweep runs (htsep.outcomes): how each run broke, read from its summary.json and metrics.csv."""

import json
import math

import pandas as pd
import pytest
from scipy import stats as sps

from htsep.outcomes import binomial_ci, run_outcomes, stress_compare


def write_run(folder, acc, diverged=False):
    folder.mkdir(parents=True)
    epochs = len(acc)
    metrics = pd.DataFrame({"epoch": range(1, epochs + 1), "test_acc": acc, "diverged": [False] * epochs,
                            "free_residual": 1e-5, "relax_steps_to_tol": 30.0, "relax_unconverged_frac": 0.1,
                            "relax_oscillation": 0.01})
    if diverged:
        metrics.loc[epochs - 1, ["test_acc", "diverged"]] = [math.nan, True]
    metrics.to_csv(folder / "metrics.csv", index=False)
    summary = {"dataset": "synthetic", "dataset_label": "Synthetic", "variant": folder.parent.name, "seed": 0,
               "final_test_acc": None if diverged else acc[-1], "best_test_acc": max(a for a in acc if a == a),
               "epochs_completed": epochs, "diverged": diverged, "diverged_epoch": epochs if diverged else None,
               "dt_stats": [{"layer": 1, "mean": 0.3, "std": 0.1}, {"layer": 2, "mean": 0.2, "std": 0.0}],
               "config": {"model": {"sizes": [4, 3, 1]}, "sweep": {"name": "stress", "lr_multiplier": 2, "beta": 0.1}}}
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder / "summary.json"


def test_run_outcomes_classify_breakage(tmp_path):
    paths = [write_run(tmp_path / "fine" / "s", [0.5, 0.7, 0.8]),
             write_run(tmp_path / "collapsed" / "s", [0.5, 0.8, 0.7]),
             write_run(tmp_path / "chance" / "s", [0.16, 0.15, 0.15]),
             write_run(tmp_path / "diverged" / "s", [0.5, 0.6, math.nan], diverged=True)]
    out = run_outcomes(paths, collapse_drop=0.05, chance_acc=0.2).set_index("variant")
    assert out["broke"].to_dict() == {"fine": False, "collapsed": True, "chance": True, "diverged": True}
    assert out.loc["collapsed", "collapsed"] and out.loc["collapsed", "max_drop"] == pytest.approx(0.1)
    assert out.loc["chance", "chance_level"] and not out.loc["chance", "collapsed"]
    assert out.loc["diverged", "diverged"] and not out.loc["diverged", "chance_level"]
    assert out.loc["fine", "lr_multiplier"] == 2 and out.loc["fine", "sweep_name"] == "stress"
    # dt pooled over the 3 + 1 neurons: mean (3 * 0.3 + 0.2) / 4
    assert out.loc["fine", "dt_mean"] == pytest.approx(0.275)


def test_binomial_ci_known_values():
    none = binomial_ci(0, 5, 0.05)  # exact interval for k = 0: [0, 1 - (alpha/2)^(1/n)]
    assert none["rate"] == 0 and none["cp_low"] == 0 and none["cp_high"] == pytest.approx(1 - 0.025 ** (1 / 5))
    assert none["wilson_low"] == pytest.approx(0, abs=1e-12) and 0 < none["wilson_high"] < none["cp_high"]
    half = binomial_ci(5, 10, 0.05)
    assert half["rate"] == 0.5 and half["cp_low"] == pytest.approx(1 - half["cp_high"])
    assert math.isnan(binomial_ci(0, 0, 0.05)["rate"])


def test_stress_compare_is_fisher_against_the_reference():
    runs = pd.DataFrame({"lr_multiplier": 2, "beta": 0.1, "variant": ["ref"] * 4 + ["hts"] * 4,
                         "broke": [True, True, True, False, False, False, False, True],
                         "final_test_acc": [0.1, 0.1, 0.1, 0.8, 0.9, 0.85, 0.8, 0.1]})
    row = stress_compare(runs, "ref").iloc[0]
    assert (row["variant"], row["n_broke"], row["n_runs"], row["n_broke_reference"]) == ("hts", 1, 4, 3)
    assert row["p"] == pytest.approx(sps.fisher_exact([[1, 3], [3, 1]]).pvalue)
    assert row["rate_difference"] == pytest.approx(-0.5) and row["acc_median_difference"] == pytest.approx(0.725)
