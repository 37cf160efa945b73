"""The preregistered primary tests (htsep.experiments.confirmatory): config errors before any job, and the paired
tests, Holm family, verdicts and resolution on simulated confirmatory runs."""

import numpy as np
import pandas as pd
import pytest

from htsep import paired
from htsep.config import ConfigError
from htsep.experiments.confirmatory.design import design
from htsep.experiments.confirmatory.plan import arms, declared
from htsep.experiments.confirmatory.primary import primary_tests
from htsep.paired import verdict
from htsep.study import load_config

from .conftest import REPO

SPEC = {"contrasts": {"heterogeneity": {"variant": "h", "baseline": "u"}, "standard_ep": {"variant": "h",
                                                                                         "baseline": "s"}},
        "alpha": 0.05, "power": 0.8, "equivalence": {"accuracy": 0.002, "sd_ratio": 1.5}, "bootstrap": 500,
        "bootstrap_seed": 0, "ci_level": 0.95, "simulations": 300, "seeds": list(range(20))}


def simulated_runs(seeds=20, rng=None) -> pd.DataFrame:
    """h equals u up to a 0.0003 jitter; s is 1 point lower, three times as spread and fails on two seeds."""
    rng = rng or np.random.default_rng(0)
    common = rng.normal(0, 0.003, seeds)
    acc = {"u": 0.87 + common, "h": 0.87 + common + rng.normal(0, 0.0003, seeds),
           "s": 0.86 + 3 * common + rng.normal(0, 0.003, seeds)}
    rows = [{"protocol": "calibrated", "dataset": "mnist", "dataset_label": "MNIST", "variant": v, "seed": s,
             "final_test_acc": acc[v][s], "broke": v == "s" and s < 2} for v in acc for s in range(seeds)]
    return pd.DataFrame(rows)


def test_primary_tests_find_the_effects_that_are_there_and_call_equivalence_within_the_margin():
    table = primary_tests(simulated_runs(), SPEC, ["calibrated"], ["mnist"]).set_index(["contrast", "test"])
    assert len(table) == 6 and table["p_holm"].ge(table["p"]).all()
    standard = table.loc["standard_ep"]
    assert standard.loc["accuracy", "verdict"] == "higher" and standard.loc["accuracy", "effect"] > 0.009
    assert standard.loc["spread", "verdict"] == "lower" and standard.loc["spread", "effect"] < 0.5
    assert (standard.loc["failures", "failed_variant"], standard.loc["failures", "failed_baseline"]) == (0, 2)
    matched = table.loc["heterogeneity"]
    assert matched.loc["accuracy", "verdict"] == "equivalent" and matched.loc["accuracy", "p_equivalence"] < 0.05
    assert matched.loc["accuracy", "ci_low"] < matched.loc["accuracy", "effect"] < matched.loc["accuracy", "ci_high"]
    # resolution: the smallest mean difference this design finds with 80% power at Holm's strictest level, from the
    # observed spread of the differences (s.d. 0.0003): well below the margin
    assert 0 < matched.loc["accuracy", "detectable"] <= 0.001
    assert standard.loc["accuracy", "detectable"] > matched.loc["accuracy", "detectable"]


def test_a_significant_test_whose_ci_contains_no_effect_is_inconclusive():
    """Two collapsed baseline runs in 25 pairs: Pitman-Morgan (normal theory) is far below alpha, the seed bootstrap
    of the s.d. ratio still reaches 1, so the spread verdict is inconclusive; with the collapses spread over more
    seeds the CI excludes 1 and the verdict is 'lower'."""
    def runs(collapsed):
        rng = np.random.default_rng(1)
        u = 0.977 + rng.normal(0, 0.001, 25)
        u[list(collapsed)] = 0.88
        h = 0.977 + rng.normal(0, 0.001, 25)
        return pd.DataFrame([{"protocol": "lab", "dataset": "mnist", "dataset_label": "MNIST", "variant": v,
                              "seed": s, "final_test_acc": acc[s], "broke": False}
                             for v, acc in (("h", h), ("u", u)) for s in range(25)])
    spec = SPEC | {"contrasts": {"heterogeneity": SPEC["contrasts"]["heterogeneity"]}}
    rare = primary_tests(runs([3, 17]), spec, ["lab"], ["mnist"]).set_index("test").loc["spread"]
    assert rare["p_holm"] < 1e-6 and rare["ci_low"] < 0.1 and rare["ci_high"] > 1
    assert rare["verdict"] == "inconclusive"
    frequent = primary_tests(runs(range(0, 25, 3)), spec, ["lab"], ["mnist"]).set_index("test").loc["spread"]
    assert frequent["p_holm"] < 0.05 and frequent["ci_high"] < 1 and frequent["verdict"] == "lower"


@pytest.mark.parametrize("row", [
    {"test": "spread", "p": 1e-8, "p_holm": 1e-8, "effect": float("nan"), "ci_low": float("nan"),
     "ci_high": float("nan"), "margin": 1.5},  # a bootstrap CI lost to a constant resample
    {"test": "spread", "p": 1e-4, "p_holm": 1e-4, "effect": 1.1, "ci_low": 0.9, "ci_high": 1.3, "margin": 1.5},
    {"test": "accuracy", "p": 1e-4, "p_holm": 1e-4, "effect": 0.0005, "ci_low": -0.0002, "ci_high": 0.001,
     "p_equivalence": 1e-3}], ids=["nan-ci", "spread-ci-in-margin", "accuracy-tost"])
def test_a_test_and_ci_that_disagree_are_inconclusive_never_equivalent(row):
    assert verdict(pd.Series(row), 0.05) == "inconclusive"
    assert verdict(pd.Series({**row, "ci_low": 1.2, "ci_high": 1.4}), 0.05) == "higher"


def test_an_interim_test_is_held_to_the_declared_family():
    """With one of two declared datasets recorded, each Holm family counts the unrecorded dataset's tests at p = 1:
    adjusted p-values and resolution are those of the declared family, not of the tests recorded so far."""
    complete = primary_tests(simulated_runs(), SPEC, ["calibrated"], ["mnist"])
    interim = primary_tests(simulated_runs(), SPEC, ["calibrated"], ["mnist", "fashion_mnist"])
    assert len(interim) == len(complete) == 6
    np.testing.assert_allclose(interim["p_holm"], paired.holm([*complete["p"], *[1.0] * 6])[:6])
    assert interim["p_holm"].ge(complete["p_holm"]).all() and interim["p_holm"].gt(complete["p_holm"]).any()
    accuracy = interim["test"] == "accuracy"
    stricter = interim.loc[accuracy, "detectable"] - complete.loc[accuracy, "detectable"]  # on a grid of effects
    assert stricter.ge(0).all() and stricter.gt(0).any()
    # a cell with its variant recorded but not its baseline has no p yet: it too counts at p = 1
    unpaired = simulated_runs().query("variant == 'h'").assign(dataset="fashion_mnist", dataset_label="Fashion-MNIST")
    partial = primary_tests(pd.concat([simulated_runs(), unpaired]), SPEC, ["calibrated"], ["mnist", "fashion_mnist"])
    np.testing.assert_allclose(partial.loc[partial["dataset"] == "mnist", "p_holm"], interim["p_holm"])
    with pytest.raises(ValueError, match="fashion_mnist"):
        primary_tests(pd.concat([simulated_runs(), unpaired]), SPEC, ["calibrated"], ["mnist"])


def test_no_recorded_run_gives_an_empty_table():
    assert len(primary_tests(pd.DataFrame(), SPEC, ["calibrated"], ["mnist"])) == 0


def test_a_baseline_of_its_own_protocol_pairs_across_protocols_in_a_family_of_its_own():
    """Standard EP at its best: h of each tested protocol against s trained once under its own protocol, by seed;
    its Holm family apart from the primary one, which it leaves unchanged."""
    runs = simulated_runs()
    own_protocol = runs[runs["variant"] == "s"].assign(protocol="standard_ep", variant="s_tuned",
                                                       final_test_acc=lambda f: f["final_test_acc"] + 0.005)
    lab = runs[runs["variant"] != "s"].assign(protocol="lab")
    runs = pd.concat([runs, own_protocol, lab], ignore_index=True)
    spec = {**SPEC, "contrasts": {**SPEC["contrasts"], "at_its_best": {
        "variant": "h", "baseline": "s_tuned", "baseline_protocol": "standard_ep", "family": "secondary"}}}
    table = primary_tests(runs, spec, ["calibrated", "lab"], ["mnist"])
    assert set(table["protocol"]) == {"calibrated", "lab"}  # standard_ep is no family of its own
    best = table[table["contrast"] == "at_its_best"].set_index(["protocol", "test"])
    assert set(best["baseline_protocol"]) == {"standard_ep"} and set(best["family"]) == {"secondary"}
    h, s = (runs[(runs["protocol"] == p) & (runs["variant"] == v)].set_index("seed")["final_test_acc"]
            for p, v in (("calibrated", "h"), ("standard_ep", "s_tuned")))
    assert best.loc[("calibrated", "accuracy"), "effect"] == pytest.approx((h - s).mean())
    assert best.loc[("calibrated", "accuracy"), "n_pairs"] == 20
    assert best.loc[("lab", "failures"), "failed_baseline"] == 2
    calibrated = table[(table["protocol"] == "calibrated") & (table["family"] == "primary")]
    before = primary_tests(simulated_runs(), SPEC, ["calibrated"], ["mnist"])
    np.testing.assert_allclose(calibrated["p_holm"].to_numpy(float), before["p_holm"].to_numpy(float))
    secondary = table[(table["protocol"] == "calibrated") & (table["family"] == "secondary")]
    np.testing.assert_allclose(secondary["p_holm"], paired.holm(secondary["p"].to_numpy(float)))


@pytest.mark.parametrize("extra, key", [
    ("preregistration: {contrasts: {x: {variant: hts_normal, baseline: uniform_0.9}}}",
     "preregistration.contrasts.x.baseline"),
    ("preregistration: {seeds: [100, 101], min_seeds: 3}", "preregistration.seeds: 2 seeds, fewer than the 3"),
    ("preregistration: {seeds: [9, 100, 101], min_seeds: 3}", "preregistration.seeds: \\[9\\] are exploratory"),
    ("preregistration: {contrasts: {x: {variant: hts_normal, baseline: uniform_1.0, baseline_protocol: dt1}}}",
     "preregistration.contrasts.x.baseline_protocol"),
])
def test_preregistration_errors_name_the_key_before_any_job(tmp_path, extra, key):
    (tmp_path / "extra.yaml").write_text(extra + "\n")
    with pytest.raises(ConfigError, match=f"config key {key}"):
        load_config([REPO / "config/config.yaml", tmp_path / "extra.yaml"])


def test_the_confirmatory_runs_are_the_arms_on_the_preregistered_seeds():
    config = load_config([REPO / "config/config.yaml"])
    assert arms(config, "lab") == [("lab", "hts_normal"), ("lab", "uniform_0.3"), ("lab", "uniform_1.0"),
                                   ("standard_ep", "uniform_1.0")]
    runs = declared(config, "calibrated")
    assert len(runs) == 4 * 3 * len(config["preregistration"]["seeds"])
    assert runs[("standard_ep", "mnist", "uniform_1.0", 100)]["training"]["beta"] == \
        config["protocols"]["standard_ep"]["beta"]
    assert {seed for (*_, seed) in runs} == set(config["preregistration"]["seeds"])
    assert not {seed for (*_, seed) in runs} & set(config["grid"]["seeds"])


def test_the_design_chooses_the_fewest_seeds_that_resolve_the_margins():
    """A tightly paired contrast (shared seed effect, little own noise) reaches the margins with the fewest seeds; a
    loosely paired, noisy one needs more or states what the most seeds resolve."""
    rng = np.random.default_rng(4)
    runs = simulated_runs(seeds=10, rng=rng)
    noisy = runs[runs["variant"] != "s"].copy()
    noisy.loc[noisy["variant"] == "h", "final_test_acc"] += rng.normal(0, 0.004, 10)
    noisy["dataset"] = "fashion_mnist"
    spec = {**SPEC, "contrasts": {"heterogeneity": SPEC["contrasts"]["heterogeneity"]}, "simulations": 200}
    table = design(pd.concat([runs, noisy]), spec, family_size=6, seed_counts=(10, 20, 50))
    chosen = table[table["chosen"]].set_index("dataset")
    assert chosen.loc["mnist", "seeds"] == 10 and chosen.loc["mnist", "reaches_targets"]
    assert chosen.loc["fashion_mnist", "seeds"] > 10
    assert chosen.loc["mnist", "alpha"] == pytest.approx(0.05 / 6)
    tight = table[table["dataset"] == "mnist"].set_index("seeds")
    assert tight["detectable_accuracy"].is_monotonic_decreasing or tight["detectable_accuracy"].nunique() == 1


def test_the_abstract_states_each_verdict_with_its_effect_and_resolution(tmp_path):
    from htsep.experiments.confirmatory.paper import confirmatory_text
    from htsep.files import write_table

    variants = [{"name": "h", "dt": {"distribution": "normal", "mean": 0.3, "std": 0.05, "clip_min": 0.2,
                                     "clip_max": 0.4}},
                {"name": "u", "dt": {"distribution": "constant", "value": 0.3}},
                {"name": "s", "dt": {"distribution": "constant", "value": 1.0}}]
    spec = {**SPEC, "seeds": list(range(100, 120))}
    params = {"variants": variants, "preregistration": spec, "caption": "c", "cells": {"calibrated": ["MNIST"]}}
    outputs = {"section": tmp_path / "section.tex", "abstract": tmp_path / "abstract.tex"}
    table = primary_tests(simulated_runs(), spec, ["calibrated"], ["mnist"])
    write_table(tmp_path / "primary.csv", table)
    confirmatory_text({"tests": tmp_path / "primary.csv"}, outputs, params)
    abstract = outputs["abstract"].read_text()
    tests = table.set_index(["contrast", "test"])
    for contrast in ("heterogeneity", "standard_ep"):
        for test in ("accuracy", "spread"):
            assert tests.loc[(contrast, test), "verdict"] in abstract
    effect = tests.loc[("standard_ep", "accuracy"), "effect"]
    assert f"{100 * effect:+.2f}".replace("+", "$+$") in abstract or f"{100 * effect:+.2f}" in abstract
    flat = " ".join(abstract.split())
    assert "in 1 protocol--dataset cell (20 pairs). Per" in flat and "uniform $\\Delta t=1$" in flat
    assert "(calibrated: MNIST; " in abstract  # a verdict's cells named by protocol
    assert "interim" not in abstract and "incomplete" not in outputs["section"].read_text()
    diverged = simulated_runs().assign(final_test_acc=lambda f: f["final_test_acc"].mask(f["seed"].eq(3)
                                                                                     & f["variant"].eq("u")))
    write_table(tmp_path / "diverged.csv", primary_tests(diverged, spec, ["calibrated"], ["mnist"]))
    confirmatory_text({"tests": tmp_path / "diverged.csv"}, outputs, params)  # every seed recorded, one diverged
    assert "(20 pairs)" in outputs["abstract"].read_text() and "incomplete" not in outputs["section"].read_text()
    declared_more = {**params, "preregistration": {**spec, "seeds": list(range(100, 130))},
                     "cells": {"calibrated": ["MNIST", "Fashion-MNIST"], "lab": ["MNIST", "KMNIST"]}}
    confirmatory_text({"tests": tmp_path / "primary.csv"}, outputs, declared_more)
    abstract = outputs["abstract"].read_text()
    assert "(20 pairs; interim: 1 cell has fewer than the 30 declared, the runs are incomplete)" in " ".join(
        abstract.split())
    assert "not yet recorded (calibrated protocol: Fashion-MNIST; lab protocol: MNIST and KMNIST)" in abstract
    section = " ".join(outputs["section"].read_text().split())
    assert "The campaign is incomplete: no pair is recorded yet under the calibrated protocol on Fashion-MNIST and " \
           "under the lab protocol on MNIST and KMNIST." in section and "& accuracy & 20 &" in section
    coarse = primary_tests(simulated_runs(), spec, ["calibrated"], ["mnist"])
    coarse.loc[(coarse["contrast"] == "standard_ep") & (coarse["test"] == "accuracy"), "detectable"] = float("nan")
    write_table(tmp_path / "coarse.csv", coarse)  # no simulated effect (up to 3 points) found with the power wanted
    confirmatory_text({"tests": tmp_path / "coarse.csv"}, outputs, params)
    assert "resolution beyond 3.00 points" in outputs["abstract"].read_text()
    assert "& $>$ 3.00 pp & higher" in outputs["section"].read_text()
    coarse.loc[(coarse["contrast"] == "standard_ep") & (coarse["test"] == "accuracy"), ["p", "verdict"]] = \
        [float("nan"), "untestable"]
    write_table(tmp_path / "coarse.csv", coarse)  # untestable: no resolution at all
    confirmatory_text({"tests": tmp_path / "coarse.csv"}, outputs, params)
    assert "& -- pp & untestable" in outputs["section"].read_text()
    assert "accuracy untestable in 1 (calibrated: MNIST); s.d.\\ across seeds" in " ".join(
        outputs["abstract"].read_text().split())
    write_table(tmp_path / "empty.csv", primary_tests(pd.DataFrame(), spec, ["calibrated"], ["mnist"]))
    confirmatory_text({"tests": tmp_path / "empty.csv"}, outputs, params)
    assert "no\nrecorded run yet" in outputs["abstract"].read_text()


def test_a_shard_trains_and_evaluates_its_part_of_the_confirmatory_runs_only():
    """confirmatory_shard picks the protocols tested, datasets and a seed range; a baseline of its own protocol comes
    with them; the robustness evaluation of this invocation follows it, its analysis still declares every run."""
    from htsep.experiments.confirmatory.plan import in_shard, trained_keys
    from htsep.study import evaluated_runs

    config = load_config([REPO / "config/config.yaml"])
    config["confirmatory_shard"] = {"protocols": ["calibrated"], "datasets": ["mnist"], "seeds": ["100", "102"]}
    keys = trained_keys(config)
    assert sorted(keys) == sorted((p, "mnist", v, s) for s in (100, 101) for p, v in arms(config, "calibrated"))
    assert in_shard(config, ("standard_ep", "mnist", "uniform_1.0", 101))
    assert not in_shard(config, ("lab", "mnist", "hts_normal", 101))
    assert not in_shard(config, ("calibrated", "mnist", "hts_normal", 102))
    here = evaluated_runs(config, this_invocation=True)
    grid = {key for key in here if key[3] in config["grid"]["seeds"]}
    # the grid's models are all evaluated, the shard's within its protocol (robustness contrasts compare those)
    assert set(here) - grid == {k for k in keys if k[0] == "calibrated"} and len(grid) == 2 * 3 * 5 * 10
    assert len(evaluated_runs(config)) == len(grid) + 2 * 3 * 3 * 50  # 3 arms per protocol tested


@pytest.mark.parametrize("shard, key", [({"datasets": ["emnist"]}, "confirmatory_shard.datasets"),
                                        ({"protocols": ["standard_ep"]}, "confirmatory_shard.protocols"),
                                        ({"seeds": [105, 100]}, "confirmatory_shard.seeds"),
                                        ({"levels": [1]}, "confirmatory_shard")])
def test_shard_errors_name_the_key(tmp_path, shard, key):
    import yaml

    (tmp_path / "extra.yaml").write_text(yaml.safe_dump({"confirmatory_shard": shard}))
    with pytest.raises(ConfigError, match=f"config key {key}"):
        load_config([REPO / "config/config.yaml", tmp_path / "extra.yaml"])


def test_the_abstract_groups_each_contrast_s_cells_by_verdict():
    """Cells of one verdict together (most frequent first), by protocol in the declared order, with the ranges of their
    effects and resolutions; a test that resolves nothing up to the largest simulated effect is counted as beyond, an
    untestable one has no effect."""
    from htsep.experiments.confirmatory.paper import verdict_groups

    def cell(protocol, name, verdict, effect, detectable):
        return {"protocol": protocol, "name": name,
                "test": {"accuracy": {"verdict": verdict, "effect": effect, "detectable": detectable}}}

    cells = [cell("lab", "MNIST", "higher", 0.02, 0.01), cell("lab", "KMNIST", "inconclusive", -0.01, float("nan")),
             cell("calibrated", "MNIST", "higher", 0.005, 0.002), cell("calibrated", "KMNIST", "higher", 0.01, 0.004),
             cell("calibrated", "Fashion-MNIST", "untestable", float("nan"), float("nan"))]
    higher, inconclusive, untestable = verdict_groups(cells, "accuracy")
    assert higher == {"verdict": "higher", "n": 3, "all": False, "where": "lab: MNIST; calibrated: MNIST and KMNIST",
                      "effects": (0.005, 0.02), "resolution": (0.002, 0.01), "n_beyond": 0}
    assert (inconclusive["where"], inconclusive["effects"], inconclusive["resolution"], inconclusive["n_beyond"]) == \
        ("lab: KMNIST", (-0.01, -0.01), None, 1)
    assert (untestable["verdict"], untestable["effects"], untestable["n"]) == ("untestable", None, 1)
    assert verdict_groups(cells[2:4], "accuracy")[0]["all"]
