"""The stability frontier: its plan from the config (htsep.experiments.frontier.plan), its config errors, and its
statistics (htsep.experiments.frontier.stats) on simulated failure data with known critical levels."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf
from scipy import stats as sps

from htsep.config import ConfigError
from htsep.experiments.frontier.plan import (
    axis_training,
    frontier_run,
    level_job,
    shard_name,
    shard_spec,
    stage_folders,
)
from htsep.experiments.frontier.stats import (
    KEYS,
    analyze,
    critical_x,
    detectable_shift,
    fit_logistic,
    merge_shards,
    separation,
)
from htsep.records import declared_runs
from htsep.study import check_config, load_config

from .conftest import REPO

STATS = {"bootstrap": 200, "bootstrap_seed": 0, "ci_level": 0.95, "alpha": 0.05, "power": 0.8}
LEVELS = [1, 2, 3, 4.5, 7, 11]


def simulate(critical: dict[str, float], slope: float, seeds: int, rng, levels=LEVELS) -> pd.DataFrame:
    """Runs whose failure follows logit P = slope * (log level - log critical[variant])."""
    rows = []
    for variant, level50 in critical.items():
        for seed in range(seeds):
            for level in levels:
                p = 1 / (1 + math.exp(-slope * (math.log(level) - math.log(level50))))
                broke = bool(rng.random() < p)
                rows.append({"dataset": "d", "dataset_label": "D", "axis": "lr", "level": float(level),
                             "variant": variant, "seed": seed, "broke": broke,
                             "failure_kind": ("never_predicted" if seed % 2 else "chance") if broke else None,
                             "failure_epoch": float(1 + seed % 3) if broke else math.nan,
                             "onset_chance": math.nan, "final_test_acc": 0.5, "dt_mean": 0.3, "dt_std": 0.0,
                             "relax_steps_to_tol": 10.0, "relax_unconverged_frac": 0.0, "code_fingerprint": "c",
                             "relaxation_kernel": "k"})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def config():
    return load_config([REPO / "config/config.yaml"])


# ---------------------------------------------------------------------------------------------------- plan


def test_shard_defaults_and_names(config):
    assert shard_spec(config) == {"datasets": ["fashion_mnist", "mnist"], "axes": ["lr"], "levels": None,
                                  "variants": None, "seeds": [0, 20]}
    shard = {**shard_spec(config), "seeds": [10, 20]}
    assert shard_name("mnist", "lr", shard) == "mnist-lr-seeds10-19"
    assert shard_name("mnist", "lr", {**shard, "levels": [1, 4.5]}) == "mnist-lr-levels1_4.5-seeds10-19"
    assert shard_name("mnist", "lr", {**shard, "variants": ["uniform_1.0"]}) == "mnist-lr-uniform_1.0-seeds10-19"
    # snakemake --config passes nested numbers as strings; an empty dataset list trains nothing (records only)
    from_command_line = {**config, "frontier_shard": {"datasets": [], "seeds": ["5", "10"], "levels": ["4.5"]}}
    check_config(from_command_line)
    assert shard_spec(from_command_line) == {"datasets": [], "axes": ["lr"], "levels": [4.5], "variants": None,
                                             "seeds": [5, 10]}


def test_axis_scales_every_layer_or_sets_the_key():
    training = {"lr": [0.4, 0.02], "beta": 1.0}
    assert axis_training(training, {"key": "lr", "mode": "scale"}, 4.5)["lr"] == pytest.approx([1.8, 0.09])
    assert axis_training(training, {"key": "beta", "mode": "set"}, 0.2) == {"lr": [0.4, 0.02], "beta": 0.2}
    assert training == {"lr": [0.4, 0.02], "beta": 1.0}  # not modified in place


def test_frontier_runs_start_from_the_protocol(config):
    run = frontier_run(config, "mnist", "lr", 7, "hts_normal", 3, "sweep")
    calibrated = config["protocols"]["calibrated"]
    assert run["training"]["lr"] == pytest.approx([7 * lr for lr in calibrated["lr"]])
    assert run["training"]["momentum"] == calibrated["momentum"] and run["training"]["beta"] == calibrated["beta"]
    assert run["training"]["epochs"] == config["frontier"]["epochs"] and run["training"]["snapshot_epochs"] == []
    assert run["sweep"] == {"name": "frontier_sweep", "axis": "lr", "level": 7.0} and run["seed"] == 3
    assert frontier_run(config, "mnist", "lr", 7, "uniform_0.3", 0, "pilot")["training"]["epochs"] == \
        config["frontier"]["pilot"]["epochs"]
    job = level_job(config, "sweep", "mnist", "lr", "9")  # 3 variants and the positive control
    assert len(job) == 4 * 20 and job[0][0] == "results/frontier/sweep/mnist/lr/9/uniform_0.3/seed0"
    assert job[-1][0] == "results/frontier/sweep/mnist/lr/9/uniform_1.0/seed19"
    assert len({folder for folder, _ in job}) == len(job)
    control_only = {**config, "frontier_shard": {"variants": ["uniform_1.0"], "seeds": [0, 10]}}
    assert [f for f, _ in level_job(control_only, "sweep", "mnist", "lr", "9")] == \
        [f"results/frontier/sweep/mnist/lr/9/uniform_1.0/seed{s}" for s in range(10)]
    pilot = level_job(config, "pilot", "fashion_mnist", "lr", "16")
    assert [r["variant"]["name"] for _, r in pilot] == ["uniform_0.3"] * 2
    assert len(stage_folders(config, "sweep", "mnist", "lr")) == 8 * 4 * 20  # MNIST: 8 levels


def test_per_dataset_levels_and_shards(config):
    config = {**config, "frontier": {**config["frontier"], "axes": {
        "lr": {"key": "lr", "mode": "scale", "levels": {"mnist": [2, 8], "fashion_mnist": [1, 3, 9]}}}},
        "frontier_shard": {"seeds": [0, 2], "datasets": ["mnist"]}}
    check_config(config)
    assert stage_folders(config, "sweep", "mnist", "lr")[-1] == "results/frontier/sweep/mnist/lr/8/uniform_1.0/seed1"
    assert len(stage_folders(config, "sweep", "fashion_mnist", "lr")) == 3 * 4 * 2


@pytest.mark.parametrize("change, key", [
    ({"axes": {"lr": {"key": "lr", "mode": "scale", "levels": [2]}}}, "frontier.axes.lr.levels"),
    ({"axes": {"lr": {"key": "learning_rate", "mode": "scale", "levels": [1, 2]}}}, "frontier.axes.lr.key"),
    ({"axes": {"lr": {"key": "lr", "mode": "scale", "levels": {"mnist": [1, 2]}}}}, "frontier.axes.lr.levels"),
    ({"variants": ["uniform_0.3", "hts_cauchy"]}, "frontier.variants"),
    ({"failure": {"criteria": ["diverged", "exploded"]}}, "frontier.failure.criteria"),
    ({"run_axes": ["momentum"]}, "frontier.run_axes"),
    ({"protocol": "fast"}, "frontier.protocol"),
    ({"positive_control": {"variant": "hts_normal", "baseline": "uniform_0.3", "prediction": "p"}},
     "frontier.positive_control.variant"),
    ({"positive_control": {"variant": "uniform_1.0", "baseline": "uniform_0.2", "prediction": "p"}},
     "frontier.positive_control.baseline"),
])
def test_frontier_config_errors_name_the_key(config, change, key):
    bad = {**config, "frontier": {**config["frontier"], **change}}
    if "failure" in change:
        bad["frontier"]["failure"] = {**config["frontier"]["failure"], **change["failure"]}
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        check_config(bad)


@pytest.mark.parametrize("shard, key", [({"seeds": [5, 5]}, "frontier_shard.seeds"),
                                        ({"datasets": ["kmnist"]}, "frontier_shard.datasets"),
                                        ({"levels": [2]}, "frontier_shard.levels"),
                                        ({"variants": ["uniform_0.2"]}, "frontier_shard.variants"),
                                        ({"sizes": [1]}, "frontier_shard")])
def test_shard_errors_name_the_key(config, shard, key):
    with pytest.raises(ConfigError, match=key):
        check_config({**config, "frontier_shard": shard})


# ------------------------------------------------------------------------------------------------ statistics


def test_separation_kinds():
    x = np.log(np.array([1, 2, 4, 8], float))
    assert separation(x, np.array([0, 0, 0, 0], bool)) == "none failed"
    assert separation(x, np.array([1, 1, 1, 1], bool)) == "all failed"
    assert separation(x, np.array([0, 0, 1, 1], bool)) == "complete"
    xq = np.log(np.array([1, 2, 2, 4], float))
    assert separation(xq, np.array([0, 0, 1, 1], bool)) == "quasi-complete"
    assert separation(x, np.array([0, 1, 0, 1], bool)) is None
    # the critical level of quasi-complete data is the overlap level; none failed: above the axis
    fit = fit_logistic(xq, np.array([0, 0, 1, 1], bool))
    assert fit["separated"] == "quasi-complete" and critical_x(fit, xq, np.array([0, 0, 1, 1], bool)) == xq[1]
    assert fit["llf"] == pytest.approx(2 * math.log(0.5))  # only the mixed level contributes


def test_lr_test_equals_the_interaction_glm():
    runs = simulate({"u": 4.0, "h1": 4.0, "h2": 6.0}, slope=2.0, seeds=15, rng=np.random.default_rng(1))
    fits = analyze(runs, ["u", "h1", "h2"], STATS)["fits"].iloc[0]
    runs = runs.assign(x=np.log(runs["level"]), y=runs["broke"].astype(float))
    full = smf.glm("y ~ x * C(variant)", runs, family=sm.families.Binomial()).fit()
    reduced = smf.glm("y ~ x", runs, family=sm.families.Binomial()).fit()
    lr = 2 * (full.llf - reduced.llf)
    assert fits["lr_stat"] == pytest.approx(lr, rel=1e-6) and fits["lr_df"] == 4
    assert fits["lr_p"] == pytest.approx(sps.chi2.sf(lr, 4), rel=1e-6)


def test_critical_levels_recover_known_values_with_covering_cis():
    truth = {"u": 3.0, "h": 6.0}
    runs = simulate(truth, slope=3.0, seeds=200, rng=np.random.default_rng(2))
    out = analyze(runs, ["u", "h"], STATS)
    critical = out["critical"].set_index("variant")
    for name, level in truth.items():
        row = critical.loc[name]
        assert row["status"] == "estimated" and row["critical_level"] == pytest.approx(level, rel=0.08)
        assert row["ci_low"] < level < row["ci_high"] and row["ci_high"] / row["ci_low"] < 1.5
    assert out["fits"].iloc[0]["lr_p"] < 1e-6  # a factor 2 shift with 200 seeds is found
    curves = out["curves"]
    assert set(curves["variant"]) == {"u", "h"} and (curves["p_low"] <= curves["p_fail"] + 1e-9).all()


def test_positive_control_is_tested_apart_from_the_heterogeneity_family():
    """The control's shift is found with a ratio CI that covers the truth; the variants' LR test leaves it out."""
    runs = simulate({"u": 6.0, "h": 6.0, "standard": 2.0}, slope=3.0, seeds=40, rng=np.random.default_rng(7))
    control = {"variant": "standard", "baseline": "u"}
    out = analyze(runs, ["u", "h"], STATS, control)
    fits = out["fits"].iloc[0]
    without = analyze(runs[runs["variant"] != "standard"], ["u", "h"], STATS)["fits"].iloc[0]
    assert fits["lr_stat"] == pytest.approx(without["lr_stat"]) and fits["lr_df"] == 2
    assert fits["n_runs"] == without["n_runs"] == 2 * 40 * len(LEVELS)
    assert fits["control_lr_p"] < 1e-6 and fits["control_n_runs"] == 40 * len(LEVELS)
    assert fits["control_ratio_low"] < 2.0 / 6.0 < fits["control_ratio_high"] < 0.6
    assert fits["control_ratio"] == pytest.approx(2.0 / 6.0, rel=0.15)
    assert set(out["critical"]["variant"]) == {"u", "h", "standard"}
    same = analyze(simulate({"u": 4.0, "standard": 4.0}, slope=3.0, seeds=20, rng=np.random.default_rng(8)),
                   ["u"], STATS, control)["fits"].iloc[0]
    assert same["control_lr_p"] > 0.05 and same["control_ratio_low"] < 1 < same["control_ratio_high"]


def test_no_difference_is_not_significant_and_comes_with_its_resolution():
    runs = simulate({"u": 4.0, "h": 4.0}, slope=2.5, seeds=20, rng=np.random.default_rng(3))
    fits = analyze(runs, ["u", "h"], STATS)["fits"].iloc[0]
    assert fits["lr_p"] > 0.05
    assert 1.2 < fits["detectable_shift_factor"] < 2.5


def test_detectable_shift_has_the_stated_power():
    """Simulated at the computed shift, the Wald test of two critical levels rejects about 80% of the time."""
    rng = np.random.default_rng(4)
    x_levels, a, b, n = np.log(np.array(LEVELS, float)), -2.5 * math.log(4), 2.5, 20
    shift = detectable_shift({"a": a, "b": b, "separated": None}, x_levels, n, 0.05, 0.8)
    rejections, trials = 0, 300
    for _ in range(trials):
        estimates = []
        for centre in (math.log(4), math.log(4) + shift):
            x = np.repeat(x_levels, n)
            y = rng.random(len(x)) < 1 / (1 + np.exp(-b * (x - centre)))
            fit = fit_logistic(x, y)
            grad = np.array([-1 / fit["b"], fit["a"] / fit["b"] ** 2])
            estimates.append((-fit["a"] / fit["b"], grad @ fit["cov"] @ grad))
        z = (estimates[1][0] - estimates[0][0]) / math.sqrt(estimates[0][1] + estimates[1][1])
        rejections += abs(z) > sps.norm.ppf(0.975)
    assert rejections / trials == pytest.approx(0.8, abs=0.08)


def test_separated_and_censored_cells_are_data():
    runs = simulate({"u": 4.0}, slope=2.0, seeds=5, rng=np.random.default_rng(5))
    never = runs.assign(variant="never", broke=False, failure_kind=None)
    always = runs.assign(variant="always", broke=True, failure_kind="diverged")
    step = runs.assign(variant="step", broke=runs["level"] >= 4.5)
    out = analyze(pd.concat([never, always, step]), ["never", "always", "step"], STATS)
    critical = out["critical"].set_index("variant")
    assert critical.loc["never", "status"] == "censored above" and critical.loc["never", "text"] == "> 11"
    assert critical.loc["always", "status"] == "censored below" and critical.loc["always", "text"] == "< 1"
    assert critical.loc["step", "status"] == "separated"
    assert critical.loc["step", ["bracket_low", "bracket_high"]].tolist() == pytest.approx([3, 4.5])
    assert critical[["ci_low", "ci_high"]].isna().all().all()  # no fake CI
    fits = out["fits"].iloc[0]
    assert "never:none failed" in fits["separated"] and math.isfinite(fits["lr_stat"])
    assert set(out["curves"]["variant"]) <= {"step"} and "step" not in set(out["curves"]["variant"])


def test_merge_keeps_the_latest_record_of_each_declared_run(tmp_path, caplog):
    """Records add up in path order (the last read wins); runs the config does not declare, or declares with another
    run config, are left out with a warning naming the record."""
    old = simulate({"u": 4.0, "h": 4.0}, slope=2.0, seeds=2, rng=np.random.default_rng(6)).assign(
        config=json.dumps({"training": {"lr": 1}}))
    declared = declared_runs({tuple(k): json.loads(c) for k, c in zip(
        old[KEYS].itertuples(index=False, name=None), old["config"], strict=True)})
    new = old[old["seed"] == 1].assign(broke=True, code_fingerprint="new")
    other_axis = old.assign(axis="beta")
    other_config = old[old["seed"] == 0].assign(broke=True, config=json.dumps({"training": {"lr": 2}}))
    paths, shards = [], tmp_path / "2026-01-01-frontier" / "shards"
    shards.mkdir(parents=True)
    for name, frame in (("a-old", old), ("b-new", new), ("c-axis", other_axis), ("d-config", other_config)):
        paths.append(shards / f"{name}.runs.csv")
        frame.to_csv(paths[-1], index=False)
    with caplog.at_level("WARNING"):
        merged = merge_shards(paths, [], declared, ["h", "u"])
    assert len(merged) == len(old) and merged["variant"].iloc[0] == "h"
    assert merged.loc[merged["seed"] == 1, "broke"].all() and set(merged.loc[merged["seed"] == 1, "record"]) == {
        str(shards / "b-new")}
    assert set(merged.loc[merged["seed"] == 1, "code_fingerprint"]) == {"new"}
    seed0 = merged[merged["seed"] == 0].set_index(KEYS)["broke"]  # the old record's: the other config's is unused
    assert seed0.sort_index().tolist() == old[old["seed"] == 0].set_index(KEYS)["broke"].sort_index().tolist()
    assert "c-axis: 24 run(s) left out, not declared" in caplog.text
    assert "d-config: 12 run(s) left out, another run config" in caplog.text
    assert len(merge_shards([], [], declared, ["u"])) == 0


def test_failure_that_falls_with_the_level_has_no_critical_level():
    runs = simulate({"u": 4.0}, slope=2.0, seeds=5, rng=np.random.default_rng(7))
    falling = runs.assign(variant="falling", broke=runs["level"] <= 3)  # fails only at low levels
    quasi = runs.assign(variant="quasi", broke=(runs["level"] > 4.5) | ((runs["level"] == 4.5) & (runs["seed"] < 2)))
    critical = analyze(pd.concat([falling, quasi]), ["falling", "quasi"], STATS)["critical"].set_index("variant")
    assert critical.loc["falling", "status"] == "no rise" and math.isnan(critical.loc["falling", "critical_level"])
    assert critical.loc["quasi", "status"] == "separated"
    assert critical.loc["quasi", "critical_level"] == pytest.approx(4.5)  # the one level where outcomes overlap
    assert critical.loc["quasi", "text"] == "4.5 (separated: none failed at 3, all at 7; no CI)"
    assert math.isnan(critical.loc["quasi", "ci_low"])
    assert critical.loc["quasi", ["bracket_low", "bracket_high"]].tolist() == pytest.approx([3, 7])


def test_detectable_shift_scales_with_the_runs_per_level():
    x, fit = np.log(np.array(LEVELS, float)), {"a": -2.5 * math.log(4), "b": 2.5, "separated": None}
    ten = detectable_shift(fit, x, 10, 0.05, 0.8)
    assert detectable_shift(fit, x, np.full(len(x), 10.0), 0.05, 0.8) == pytest.approx(ten)
    assert detectable_shift(fit, x, 40, 0.05, 0.8) == pytest.approx(ten / 2)  # the s.e. goes as 1/sqrt(n)
    more_near_the_crossing = np.array([10, 10, 20, 20, 10, 10], float)
    assert detectable_shift(fit, x, more_near_the_crossing, 0.05, 0.8) < ten
    assert math.isnan(detectable_shift({**fit, "separated": "complete"}, x, 10, 0.05, 0.8))
