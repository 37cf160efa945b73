"""Calibration: the declared selection rule, and the shipped calibrated settings are the recorded selection."""

import json

import pandas as pd
import pytest

from htsep.experiments.calibration.plan import calibration_run, search_points
from htsep.experiments.calibration.selection import calibration_table, search_runs, select
from htsep.study import load_config

from .conftest import REPO

RECORD = REPO / "benchmarks" / "records" / "2026-12-01-calibration"


def config_with(tmp_path, search: str):
    path = tmp_path / "search.yaml"
    path.write_text(search)
    return load_config([REPO / "config" / "config.yaml", REPO / "config" / "test.yaml", path])


def table(points: dict[str, list[float]]) -> pd.DataFrame:
    return pd.DataFrame([{"kind": "ep", "point": p, "order": i, "seed": s, "val_acc": acc}
                         for i, (p, accs) in enumerate(points.items()) for s, acc in enumerate(accs)])


def test_highest_mean_wins_and_ties_go_to_the_earlier_simpler_point(tmp_path):
    config = config_with(tmp_path, "calibration: {search: {momentum: [0.0, 0.5], beta: [0.5]}}")
    simple, elaborate = search_points(config, "ep")
    assert select(table({simple: [0.80, 0.90], elaborate: [0.86, 0.86]}), config)["ep"]["point"] == elaborate
    tie = select(table({simple: [0.85, 0.87], elaborate: [0.86, 0.86]}), config)["ep"]
    assert tie["point"] == simple and tie["values"] == {"momentum": 0.0, "beta": 0.5, "lr": [0.2, 0.1]}
    assert tie["mean_val_acc"] == pytest.approx(0.86)


def test_a_diverged_run_scores_zero(tmp_path):
    config = config_with(tmp_path, "calibration: {search: {momentum: [0.0, 0.5], beta: [0.5]}}")
    simple, elaborate = search_points(config, "ep")
    assert select(table({simple: [float("nan"), 0.99], elaborate: [0.5, 0.51]}), config)["ep"]["point"] == elaborate


def test_search_runs_train_on_the_fit_split_with_the_point_overriding_training(tmp_path):
    config = config_with(tmp_path, "calibration: {search: {momentum: [0.0], beta: [0.5, 1.0]}}")
    name = list(search_points(config, "ep"))[1]
    run = calibration_run(config, "ep", name, 2)
    assert run["training"] == {**config["training"], "momentum": 0.0, "beta": 1.0, "lr": [0.2, 0.1]}
    assert run["seed"] == 2 and run["variant"]["name"] == config["calibration"]["variant"]
    assert "protocol" not in run  # a search point is not a protocol of the study
    assert run["sweep"] == {"name": "calibration", "kind": "ep", "point": name}  # what its table row says


def test_the_table_reads_kind_and_point_from_each_run_not_its_folder(tmp_path):
    config = config_with(tmp_path, "calibration: {search: {momentum: [0.0], beta: [0.5, 1.0]}}")
    name = list(search_points(config, "ep"))[1]
    summary = tmp_path / "anywhere" / "summary.json"
    summary.parent.mkdir()
    summary.write_text(json.dumps({"seed": 2, "final_test_acc": 0.8, "diverged": False, "epochs_completed": 1,
                                   "config": calibration_run(config, "ep", name, 2)}))
    pd.DataFrame({"epoch": [1], "classes_never_predicted": [0], "dead_frac_l1": [0.1]}).to_csv(
        summary.parent / "metrics.csv", index=False)
    row = calibration_table(search_runs([summary]), config).iloc[0]
    assert (row["kind"], row["point"], row["order"], row["beta"], row["val_acc"]) == ("ep", name, 1, 1.0, 0.8)


@pytest.mark.skipif(not (RECORD / "selection.json").exists(), reason="no calibration record yet")
def test_shipped_calibrated_protocol_and_backprop_are_the_recorded_selection():
    config = load_config([REPO / "config" / "config.yaml"])
    record = json.loads((RECORD / "selection.json").read_text())
    calibration = config["calibration"]
    assert (record["rule"], record["dataset"], record["variant"], record["seeds"]) == (
        calibration["selection"], calibration["dataset"], calibration["variant"], calibration["seeds"])
    assert set(record["ep"]["means"]) == set(search_points(config, "ep"))  # the shipped search is the one run
    assert set(record["backprop"]["means"]) == set(search_points(config, "backprop"))
    assert config["protocols"]["calibrated"] == record["ep"]["values"]
    assert config["backprop"] == record["backprop"]["values"]
