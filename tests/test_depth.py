"""Depth: the deeper network's runs carry its own sizes and protocol at each declared T1, a config that cannot work is
refused before any job, the T1 rule reads the validation profile as declared (or says that it separates nothing), the
paired tests find a planted difference and claim none where there is none, and the shipped protocol and T1 levels
are what the committed search selects."""

import numpy as np
import pandas as pd
import pytest

from htsep.config import ConfigError
from htsep.experiments.calibration.selection import winner
from htsep.experiments.depth import plan
from htsep.experiments.depth.analysis import paired_tests, residuals
from htsep.experiments.depth.search import free_steps_choice, profile_columns
from htsep.records import committed, declared_runs, merge
from htsep.study import load_config

from .conftest import REPO, config_with


def test_runs_train_the_deeper_network_under_its_protocol_at_each_declared_t1():
    config = load_config([REPO / "config" / "config.yaml"])
    runs = plan.declared(config)
    spec = config["depth"]
    assert len(runs) == 2 * 3 * len(spec["seeds"])
    for (_, t1, variant, _), run in runs.items():
        assert run["model"]["sizes"] == [784, 256, 256, 10] and run["protocol"] == "depth"
        assert run["training"]["free_steps"] == t1 and t1 in (100, 200)
        assert run["training"]["lr"] == spec["protocol"]["lr"] and run["training"]["epochs"] == spec["epochs"]
        assert run["sweep"] == {"name": "depth", "free_steps": t1} and run["variant"]["name"] == variant
    assert config["model"]["hidden"] == [256]  # the one-layer study keeps its network
    search = plan.declared_search(config)
    assert len(search) == 6 and all(r["training"]["free_steps"] == config["training"]["free_steps"]
                                    for r in search.values())


@pytest.mark.parametrize(("text", "message"), [
    ("depth: {protocol: {lr: [0.1, 0.1]}}", "need one learning rate per layer (3)"),
    ("depth: {hidden: [256, 256, 256]}", "config key depth.search.points.lr: need one learning rate per layer (4)"),
    ("depth: {search: {points: {lr: [[0.1, 0.1, 0.1, 0.1]]}}}", "search point momentum0_beta0.5_lr0.1-0.1-0.1-0.1"),
    ("depth: {free_steps: {levels: {unconverged: 200, converged: 100}}}", "must be smaller than the converged"),
    ("depth: {free_steps: {levels: {unconverged: 100, converged: 250}}}", "not one of the candidates"),
    ("depth: {free_steps: {unconverged: 0.05, converged: 0.1}}", "no T1 separates the two"),
    ("depth: {contrasts: {x: {variant: hts_gamma, baseline: uniform_0.3}}}", "is not in depth.variants"),
    ("depth: {protocol: {epochs: 3}}", "config key depth.protocol.epochs: the depth overrides only"),
])
def test_a_depth_config_that_cannot_work_is_refused_naming_its_key(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        config_with(tmp_path, text)


def profile(shares: dict) -> pd.DataFrame:
    return pd.DataFrame([profile_columns(pd.DataFrame(
        [{"free_steps": t, "moving_l1": s, "moving_l2": s, "moving_l3": s / 2, "moving": s} for t, s in
         shares.items()]))])


def test_the_t1_rule_picks_the_largest_unconverged_and_the_smallest_converged_candidate():
    spec = {"free_steps": {"candidates": [60, 100, 150, 200, 300], "unconverged": 0.5, "converged": 0.1,
                           "levels": {"unconverged": 100, "converged": 200}}}
    runs = pd.concat([profile({60: 1.0, 100: 0.9, 150: 0.3, 200: 0.08, 300: 0.01}),
                      profile({60: 1.0, 100: 0.7, 150: 0.2, 200: 0.1, 300: 0.02})])
    chosen = free_steps_choice(runs, spec)
    assert chosen["selected"] == {"unconverged": 100, "converged": 200} and chosen["declared_agree"]
    assert chosen["shares"][200] == pytest.approx(0.09)
    spec["free_steps"]["levels"] = {"unconverged": 60, "converged": 300}
    assert not free_steps_choice(runs, spec)["declared_agree"]  # runs at other levels: said, not hidden
    slow = free_steps_choice(profile({60: 1.0, 100: 1.0, 150: 0.9, 200: 0.6, 300: 0.4}), spec)
    assert slow["selected"] == {"unconverged": 200, "converged": None} and not slow["separates"]


def arms_frame(effect: float, n: int = 12, failed: tuple = ()) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for t1 in (100, 200):
        seed_part = rng.normal(0.97, 0.003, n)
        for variant, shift in (("uniform_1.0", -0.01), ("uniform_0.3", 0.0), ("hts_normal", effect)):
            for s in range(n):
                broke = (variant, s) in failed
                rows.append({"dataset": "mnist", "dataset_label": "MNIST", "free_steps": t1, "variant": variant,
                             "seed": s, "final_test_acc": seed_part[s] + shift + rng.normal(0, 0.0005),
                             "broke": broke})
    return pd.DataFrame(rows)


SPEC = {"contrasts": {"heterogeneity": {"variant": "hts_normal", "baseline": "uniform_0.3"},
                      "standard_ep": {"variant": "hts_normal", "baseline": "uniform_1.0"}},
        "equivalence": {"accuracy": 0.002, "sd_ratio": 1.5}, "bootstrap": 500, "bootstrap_seed": 0,
        "ci_level": 0.95, "alpha": 0.05, "power": 0.8, "simulations": 50}


def test_the_paired_tests_find_a_planted_difference_and_call_a_null_equivalent():
    table = paired_tests(arms_frame(0.0), SPEC, [100, 200], ["mnist"])
    accuracy = table[table["test"] == "accuracy"].set_index(["free_steps", "contrast"])
    assert set(accuracy.loc[(slice(None), "heterogeneity"), "verdict"]) == {"equivalent"}
    assert set(accuracy.loc[(slice(None), "standard_ep"), "verdict"]) == {"higher"}  # +1 point over dt = 1
    assert accuracy.loc[(100, "standard_ep"), "effect"] == pytest.approx(0.01, abs=0.001)
    assert (accuracy["detectable"] < 0.01).all()  # 12 pairs with s.d. 0.07 points resolve well under a point
    assert len(table) == 12 and table["p_holm"].ge(table["p"]).all()


def test_failures_are_counted_per_arm_and_a_missing_arm_is_untestable():
    table = paired_tests(arms_frame(0.0, failed=(("uniform_0.3", 1), ("uniform_0.3", 2))), SPEC, [100, 200], ["mnist"])
    failures = table[(table["test"] == "failures") & (table["contrast"] == "heterogeneity")]
    assert failures["failed_baseline"].tolist() == [2, 2] and failures["failed_variant"].tolist() == [0, 0]
    only_one = arms_frame(0.0)
    only_one = only_one[only_one["variant"] != "uniform_1.0"]
    table = paired_tests(only_one, SPEC, [100, 200], ["mnist"])
    assert set(table.loc[table["contrast"] == "standard_ep", "verdict"]) == {"untestable"}


def test_residuals_are_averaged_over_seeds_per_layer_and_epoch():
    epochs = pd.DataFrame([{"dataset": "mnist", "free_steps": 100, "variant": "hts_normal", "seed": s, "epoch": e,
                            "free_residual_l1": 1e-3 * (s + 1), "free_residual_l2": 2e-3, "free_residual_l3": 1e-5,
                            "free_residual": 9.0} for s in range(2) for e in (1, 2)])
    table = residuals(epochs)
    assert sorted(table["layer"].unique()) == [1, 2, 3] and len(table) == 6
    assert table.loc[table["layer"] == 1, "residual"].tolist() == pytest.approx([1.5e-3, 1.5e-3])


def test_shipped_protocol_and_t1_levels_are_what_the_committed_search_selects():
    config = load_config([REPO / "config" / "config.yaml", REPO / "config" / "offline.yaml"])
    config["records"]["root"] = str(REPO / "benchmarks" / "records")
    declared = plan.declared_search(config)
    runs = merge(committed(config, "depth", "search"), None, plan.SEARCH_KEYS, declared_runs(declared), "depth")
    assert set(map(tuple, runs[list(plan.SEARCH_KEYS)].itertuples(index=False))) == set(declared)
    points = plan.search_points(config)
    runs["order"] = runs["point"].map({p: i for i, p in enumerate(points)})
    chosen = winner(runs, points)
    assert chosen["values"] == config["depth"]["protocol"]
    steps = free_steps_choice(runs[runs["point"] == chosen["point"]], config["depth"])
    assert steps["separates"] and steps["declared_agree"]


def test_the_test_study_records_the_network_and_writes_the_section(test_study):
    runs = pd.read_csv(test_study / plan.SHARD["runs"])
    assert set(runs["hidden"]) == {"32-32"} and len(runs) == 2 * 3 * 3
    assert set(pd.read_csv(test_study / plan.SHARD["search"])["hidden"]) == {"32-32"}
    epochs = pd.read_csv(test_study / plan.SHARD["epochs"])
    assert {"free_residual_l1", "free_residual_l2", "free_residual_l3", "relax_unconverged_frac_l3"} <= set(epochs)
    assert len(epochs) == len(runs) * 2  # two epochs per run, none diverges
    table = pd.read_csv(test_study / "results/depth/tests.csv")
    assert len(table) == 2 * 2 * 3 and set(table["free_steps"]) == {3, 60}
    text = (test_study / "paper/generated/depth.tex").read_text()
    assert "Prediction, written before the runs: \\emph{A tiny depth study: no arm fails.}" in text
    assert "\\paragraph{Synthetic, $T_1 = 60$ (converged).}" in text
    assert "found no pair of candidates that separates an unconverged from a converged free phase" in text  # said
    abstract = (test_study / "paper/generated/depth_abstract.tex").read_text()
    assert "At two hidden layers (784-32-32-10, a protocol of its own, 3 paired seeds on Synthetic)" in abstract
    assert "at the\nunconverged $T_1 = 3$; " in abstract and abstract.rstrip().endswith("converged $T_1 = 60$.")
    assert (test_study / "figures/depth.pdf").stat().st_size > 10_000


def test_seeds_added_by_an_extension_are_interim_until_recorded_and_the_extension_is_quoted(test_study, tmp_path):
    """Declared seeds beyond the recorded ones make the abstract's depth sentence an interim result; the extension's
    text (why, and its prediction) is quoted in the section after the original prediction."""
    from htsep.experiments.depth.paper import depth_text
    from htsep.report.figures import BY_NAME

    config = load_config([REPO / "config/config.yaml", REPO / "config/test.yaml"])
    spec = config["depth"]
    depth = test_study / "results/depth"
    inputs = {"selection": depth / "selection.json", "search": depth / "search.csv", "cells": depth / "cells.csv",
              "tests": depth / "tests.csv"}
    outputs = {"section": tmp_path / "depth.tex", "abstract": tmp_path / "depth_abstract.tex"}
    extended = {**spec, "seeds": [*spec["seeds"], 97, 98], "extension": "Two more seeds, for the floor."}
    params = {"depth": extended, "training": config["training"], "caption": BY_NAME["depth"].caption}
    depth_text(inputs, outputs, params)
    abstract = " ".join(outputs["abstract"].read_text().split())
    recorded = len(spec["seeds"])
    assert f"{recorded} paired seeds of the {recorded + 2} declared, an interim result, on Synthetic" in abstract
    section = " ".join(outputs["section"].read_text().split())
    assert "Extension, declared before its runs: \\emph{Two more seeds, for the floor.}" in section
    assert section.index("Prediction, written before the runs") < section.index("Extension, declared")
    depth_text(inputs, outputs, {**params, "depth": spec})  # as declared and recorded: no interim, no extension
    assert "interim" not in outputs["abstract"].read_text() and "Extension" not in outputs["section"].read_text()
