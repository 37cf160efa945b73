"""Calibration: the declared selection rule, and the shipped calibrated settings are the recorded selection."""

import json

import pandas as pd
import pytest

from htsep.config import ConfigError
from htsep.experiments.calibration.paper import calibration_text
from htsep.experiments.calibration.plan import KEYS, calibration_run, declared, search_points
from htsep.experiments.calibration.selection import calibration_table, search_runs, select
from htsep.records import committed, declared_runs, merge
from htsep.study import check_config, load_config

from .conftest import REPO, config_with


def table(points: dict[str, list[float]], variant: str = "uniform_0.2") -> pd.DataFrame:
    return pd.DataFrame([{"kind": "ep", "dataset": "synthetic", "variant": variant, "point": p, "order": i, "seed": s,
                          "val_acc": acc} for i, (p, accs) in enumerate(points.items()) for s, acc in enumerate(accs)])


def test_highest_mean_wins_and_ties_go_to_the_earlier_simpler_point(tmp_path):
    config = config_with(tmp_path, test_config=True, text="calibration: {search: {momentum: [0.0, 0.5], beta: [0.5]}}")
    simple, elaborate = search_points(config, "ep")
    chosen = select(table({simple: [0.80, 0.90], elaborate: [0.86, 0.86]}), config)["protocols"]
    assert chosen["calibrated"]["point"] == elaborate
    tie = select(table({simple: [0.85, 0.87], elaborate: [0.86, 0.86]}), config)["protocols"]["calibrated"]
    assert tie["point"] == simple and tie["values"] == {"momentum": 0.0, "beta": 0.5, "lr": [0.2, 0.1]}
    assert tie["mean_val_acc"] == pytest.approx(0.86)


def test_a_diverged_run_scores_zero(tmp_path):
    config = config_with(tmp_path, test_config=True, text="calibration: {search: {momentum: [0.0, 0.5], beta: [0.5]}}")
    simple, elaborate = search_points(config, "ep")
    chosen = select(table({simple: [float("nan"), 0.99], elaborate: [0.5, 0.51]}), config)["protocols"]
    assert chosen["calibrated"]["point"] == elaborate


def test_search_runs_train_on_the_fit_split_with_the_point_overriding_training(tmp_path):
    config = config_with(tmp_path, test_config=True, text="calibration: {search: {momentum: [0.0], beta: [0.5, 1.0]}}")
    name = list(search_points(config, "ep"))[1]
    run = calibration_run(config, "synthetic", "uniform_1.0", name, 2)
    assert run["training"] == {**config["training"], "momentum": 0.0, "beta": 1.0, "lr": [0.2, 0.1]}
    assert run["seed"] == 2 and run["variant"]["name"] == "uniform_1.0"
    assert "protocol" not in run  # a search point is not a protocol of the study
    assert run["sweep"] == {"name": "calibration", "kind": "ep", "point": name}  # what its table row says


def test_each_protocol_is_selected_from_its_reference_variants_search_and_backprop_per_dataset(tmp_path):
    """calibrated from uniform_0.2's runs, standard_ep from uniform_1.0's (one search, two reference variants);
    the backprop reference on each dataset from that dataset's runs; every run declared once."""
    config = config_with(tmp_path, test_config=True, text="calibration: {search: {momentum: [0.0, 0.5], beta: [0.5]},\n"
                                   "  backprop_search: {lr: [[0.05, 0.05], [0.1, 0.1]]}}\n"
                                   "datasets: [synthetic, mnist]")
    simple, elaborate = search_points(config, "ep")
    runs = pd.concat([table({simple: [0.80, 0.82], elaborate: [0.86, 0.86]}),
                      table({simple: [0.70, 0.72], elaborate: [0.20, float("nan")]}, variant="uniform_1.0")])
    bp_simple, bp_second = list(search_points(config, "backprop"))[:2]
    for dataset, best in (("synthetic", bp_simple), ("mnist", bp_second)):
        runs = pd.concat([runs, pd.DataFrame([
            {"kind": "backprop", "dataset": dataset, "variant": "backprop", "point": p, "order": i, "seed": 0,
             "val_acc": 0.9 if p == best else 0.5} for i, p in enumerate(search_points(config, "backprop"))])])
    chosen = select(runs, config)
    assert {p: c["point"] for p, c in chosen["protocols"].items()} == {"calibrated": elaborate, "standard_ep": simple}
    assert chosen["protocols"]["standard_ep"]["variant"] == "uniform_1.0"
    assert {d: c["point"] for d, c in chosen["backprop"].items()} == {"synthetic": bp_simple, "mnist": bp_second}
    keys = declared(config)
    n_ep, n_bp = len(search_points(config, "ep")), len(search_points(config, "backprop"))
    assert len(keys) == (2 * n_ep + 2 * n_bp) * len(config["calibration"]["seeds"])
    assert {(d, v) for d, v, _, _ in keys} == {("synthetic", "uniform_0.2"), ("synthetic", "uniform_1.0"),
                                               ("synthetic", "backprop"), ("mnist", "backprop")}
    # the appendix says whether the backprop reference is a ceiling on EP's search dataset
    values = {kind: search_points(config, kind) for kind in ("ep", "backprop")}
    runs = pd.DataFrame([{**row, **{k: str(v) for k, v in values[row["kind"]][row["point"]].items()},
                          "diverged": False} for row in runs.to_dict("records")])
    runs.to_csv(tmp_path / "calibration.csv", index=False)
    (tmp_path / "selection.json").write_text(json.dumps(chosen))
    inputs = {"table": tmp_path / "calibration.csv", "selection": tmp_path / "selection.json"}
    labels = {"synthetic": "Synthetic", "mnist": "MNIST"}
    calibration_text(inputs, tmp_path / "a.tex", config, "caption", labels)
    text = " ".join((tmp_path / "a.tex").read_text().split())
    assert ("On Synthetic, its best mean validation accuracy, 90.00\\,\\%, compares with EP's 86.00\\,\\% "
            "(\\texttt{calibrated}) and 71.00\\,\\% (\\texttt{standard\\_ep}): within this search it is a ceiling for "
            "every EP protocol.") in text
    (tmp_path / "selection.json").write_text(json.dumps(
        chosen | {"backprop": {d: c | {"mean_val_acc": 0.8} for d, c in chosen["backprop"].items()}}))
    calibration_text(inputs, tmp_path / "b.tex", config, "caption", labels)
    assert "within this search the backprop reference is no ceiling for EP" in " ".join(
        (tmp_path / "b.tex").read_text().split())


def test_the_backprop_reference_needs_a_setting_for_every_dataset(tmp_path):
    config = config_with(tmp_path, test_config=True, text="datasets: [synthetic, mnist]")
    del config["backprop"]["mnist"]
    with pytest.raises(ConfigError, match=r"config key backprop: no setting for dataset\(s\) \['mnist'\]"):
        check_config(config)


def test_the_table_reads_kind_and_point_from_each_run_not_its_folder(tmp_path):
    config = config_with(tmp_path, test_config=True, text="calibration: {search: {momentum: [0.0], beta: [0.5, 1.0]}}")
    name = list(search_points(config, "ep"))[1]
    summary = tmp_path / "anywhere" / "summary.json"
    summary.parent.mkdir()
    summary.write_text(json.dumps({"seed": 2, "final_test_acc": 0.8, "diverged": False, "epochs_completed": 1,
                                   "config": calibration_run(config, "synthetic", "uniform_0.2", name, 2)}))
    pd.DataFrame({"epoch": [1], "classes_never_predicted": [0], "dead_frac_l1": [0.1]}).to_csv(
        summary.parent / "metrics.csv", index=False)
    row = calibration_table(search_runs([summary]), config).iloc[0]
    assert (row["kind"], row["dataset"], row["variant"], row["point"], row["order"], row["beta"], row["val_acc"]) == (
        "ep", "synthetic", "uniform_0.2", name, 1, 1.0, 0.8)


def test_shipped_searched_protocols_and_backprop_are_what_the_records_select():
    """Every run of the shipped searches is recorded, and the shipped protocols and backprop settings are the
    points the declared rule selects from those records."""
    config = load_config([REPO / "config" / "config.yaml", REPO / "config" / "offline.yaml"])
    config["records"]["root"] = str(REPO / "benchmarks" / "records")
    runs = merge(committed(config, "calibration", "runs"), None, KEYS, declared_runs(declared(config)), "calibration")
    missing = set(declared(config)) - set(map(tuple, runs[KEYS].itertuples(index=False)))
    assert not missing, f"{len(missing)} declared search runs are not recorded, e.g. {sorted(missing)[:3]}"
    chosen = select(calibration_table(runs, config), config)
    for protocol, selected in chosen["protocols"].items():
        assert config["protocols"][protocol] == selected["values"], protocol
    assert config["backprop"] == {d: c["values"] for d, c in chosen["backprop"].items()}
