"""Sensitivity: each level changes exactly one training key of the protocol, the protocol's own point is trained once
and placed on every axis, a level that makes training invalid is refused before any job, and the analysis finds a
known positive control, a known interaction, and no effect where there is none."""

import numpy as np
import pandas as pd
import pytest

from htsep.config import ConfigError, protocol_training
from htsep.experiments.sensitivity import plan
from htsep.experiments.sensitivity.analysis import contrasts, interaction_tests, on_axes
from htsep.experiments.sensitivity.paper import sensitivity_text
from htsep.study import load_config

from .conftest import REPO, config_with


def test_each_level_changes_one_training_key_and_the_base_point_is_trained_once():
    config = load_config([REPO / "config" / "config.yaml"])
    runs = plan.declared(config)
    protocol = protocol_training(config, "calibrated")
    assert len(runs) == 650  # the cost stated in config: (3x4x2 + 3x4 + 4x5) levels x variants, + 9 base cells; x10
    for (_, axis, level, _, _), run in runs.items():
        training = run["training"]
        changed = {k for k in protocol if k not in ("epochs", "snapshot_epochs") and training[k] != protocol[k]}
        assert changed == (set() if axis == plan.BASE else {axis})
        assert training["epochs"] == 10 and training["snapshot_epochs"] == []
        assert run["sweep"] == {"name": "sensitivity", "axis": axis, "level": level}
    base = {(d, v) for d, a, _, v, _ in runs if a == plan.BASE}
    assert ("mnist", "uniform_1.0") not in base and ("fashion_mnist", "uniform_1.0") in base  # beta's own variant
    assert isinstance(runs["fashion_mnist", "free_steps", 3.0, "hts_normal", 0]["training"]["free_steps"], int)


@pytest.mark.parametrize(("text", "message"), [
    ("sensitivity: {axes: {beta: {levels: [0.5, 0]}}}", r"sensitivity.axes.beta.levels: beta must be > 0, got 0"),
    ("sensitivity: {axes: {free_steps: {levels: [3, 4.5]}}}", r"free_steps is a whole number of steps >= 1, got 4.5"),
    ("sensitivity: {axes: {nudged_steps: {levels: [0]}}}", r"nudged_steps is a whole number of steps >= 1, got 0"),
    ("sensitivity: {axes: {beta: {levels: [.inf]}}}", r"sensitivity.axes.beta.levels.0: inf is not a finite number"),
    ("sensitivity: {axes: {momentum: {levels: [1.0], prediction: p}}, run_axes: [momentum]}",
     r"sensitivity.axes.momentum: level 1.0: .*momentum"),
    ("sensitivity: {axes: {beta: {levels: [1.0, 2]}}}", r"1.0 is the protocol's own value, trained once as the base"),
    ("sensitivity: {run_axes: [lr_scale]}", r"sensitivity.run_axes: 'lr_scale' is not an axis"),
    ("sensitivity: {positive_control: {axis: beta, level: 3, dataset: fashion_mnist, variant: uniform_0.2, "
     "baseline: uniform_0.4}}", r"sensitivity.positive_control: level 3 of axis 'beta' is not a declared level"),
])
def test_a_level_that_makes_training_invalid_is_refused_before_any_job(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        config_with(tmp_path, text + "\n")


def simulated(rng, control_effect=0.01, interaction=0.0, seeds=12) -> pd.DataFrame:
    """Runs of one axis with levels 3 and 12 and the base point (60): uniform_0.2 below uniform_0.4 by
    ``control_effect`` at level 3 only; hts_normal - uniform_0.3 = ``interaction`` at level 3, 0 elsewhere; a seed
    effect shared by every run of a seed (ten times the noise)."""
    seed_effect = rng.normal(0, 0.01, seeds)
    rows = []
    for axis, level in (("free_steps", 3.0), ("free_steps", 12.0), (plan.BASE, plan.BASE_LEVEL)):
        for variant in ("uniform_0.2", "uniform_0.3", "uniform_0.4", "hts_normal"):
            for seed in range(seeds):
                acc = 0.87 + seed_effect[seed] + rng.normal(0, 0.001)
                acc -= control_effect if (level == 3 and variant == "uniform_0.2") else 0
                acc += interaction if (level == 3 and variant == "hts_normal") else 0
                rows.append({"dataset": "fashion_mnist", "dataset_label": "Fashion-MNIST", "axis": axis,
                             "level": level, "variant": variant, "seed": seed, "final_test_acc": acc,
                             "broke": False})
    return pd.DataFrame(rows)


SPEC = {"contrast": {"variant": "hts_normal", "baseline": "uniform_0.3"},
        "positive_control": {"axis": "free_steps", "level": 3, "dataset": "fashion_mnist", "variant": "uniform_0.2",
                             "baseline": "uniform_0.4"},
        "bootstrap": 500, "bootstrap_seed": 0, "ci_level": 0.95, "alpha": 0.05, "power": 0.8, "simulations": 200}


def test_the_base_point_sits_on_every_axis_at_the_protocols_value():
    runs = on_axes(simulated(np.random.default_rng(0)), {"free_steps": 60})
    assert sorted(runs["level"].unique()) == [3.0, 12.0, 60.0]
    assert set(runs["axis"]) == {"free_steps"} and runs.loc[runs["level"] == 60, "base_point"].all()
    assert not runs.loc[runs["level"] < 60, "base_point"].any() and len(runs) == 3 * 4 * 12


def test_the_positive_control_is_found_and_no_heterogeneity_effect_is_claimed():
    runs = on_axes(simulated(np.random.default_rng(1)), {"free_steps": 60})
    table = contrasts(runs, SPEC)
    (control,) = table[table["kind"] == "positive_control"].to_dict("records")
    assert control["level"] == 3 and control["difference"] == pytest.approx(-0.01, abs=0.002)
    assert control["ci_high"] < 0 and control["p_holm"] < 0.01
    het = table[table["kind"] == "contrast"]
    assert len(het) == 3 and (het["ci_low"] < 0).all() and (het["ci_high"] > 0).all()
    assert (het["detectable"] <= 0.002).all()  # paired: the resolution is set by the noise, not the seed effect


def test_the_mixed_model_finds_an_interaction_only_where_there_is_one():
    null = interaction_tests(on_axes(simulated(np.random.default_rng(2), control_effect=0.0), {"free_steps": 60}))
    real = interaction_tests(on_axes(simulated(np.random.default_rng(2), control_effect=0.0, interaction=0.005),
                                     {"free_steps": 60}))
    assert null["df"].iloc[0] == 6 and null["p"].iloc[0] > 0.01
    assert real["p"].iloc[0] < 1e-6


def test_before_any_run_the_section_says_so(tmp_path):
    config = load_config([REPO / "config" / "config.yaml"])
    for name, columns in (("cells", ["dataset", "axis", "level", "variant", "n_runs", "n_failed"]),
                          ("contrasts", ["dataset", "axis", "level", "kind"]), ("models", ["dataset", "axis"])):
        pd.DataFrame(columns=columns).to_csv(tmp_path / f"{name}.csv", index=False)
    values = {axis: plan.protocol_value(config, axis) for axis in config["sensitivity"]["run_axes"]}
    before = {**config["sensitivity"], "axes": {axis: {**spec, "outcome": None}
                                                for axis, spec in config["sensitivity"]["axes"].items()}}
    sensitivity_text({name: tmp_path / f"{name}.csv" for name in ("cells", "contrasts", "models")},
                     tmp_path / "s.tex", {"sensitivity": before, "protocol_values": values, "caption": "c"})
    text = (tmp_path / "s.tex").read_text()
    assert "No sensitivity run has been recorded yet." in text and "Prediction, written before the runs" in text
    assert "Outcome, judged after the runs" not in text
    spec = {**before, "axes": {**before["axes"], "beta": {**before["axes"]["beta"], "outcome": "held at 4 of 5 betas"}}}
    sensitivity_text({name: tmp_path / f"{name}.csv" for name in ("cells", "contrasts", "models")},
                     tmp_path / "s.tex", {"sensitivity": spec, "protocol_values": values, "caption": "c"})
    assert "Outcome, judged after the runs from the numbers above: \\emph{held at 4 of 5 betas}" in \
        (tmp_path / "s.tex").read_text()


def test_a_level_lost_in_its_folder_name_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"0.1234567 does not survive its folder name '0.123457'"):
        config_with(tmp_path, "sensitivity: {axes: {beta: {levels: [0.5, 0.1234567]}}}\n")


def test_a_campaign_with_nothing_left_to_train_writes_an_empty_shard_the_analysis_reads(tmp_path):
    from htsep.outcomes import write_outcomes
    from htsep.records import read_shard

    write_outcomes([], tmp_path / "shard.csv", {"criteria": ["diverged"]}, plan.KEYS)
    assert read_shard(tmp_path / "shard.csv", plan.KEYS, local=True).empty
