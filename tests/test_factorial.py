"""The dt mean x spread factorial: its cells follow one clipping rule and hit their target means (or the config is
refused before any job runs), cells shared with the grid are the grid's runs, and the mixed model recovers known
effects with honest intervals."""

import numpy as np
import pandas as pd
import pytest

from htsep.config import ConfigError
from htsep.experiments.factorial.analysis import accuracy_effects, failure_model
from htsep.experiments.factorial.plan import cells, clipped_normal_mean, declared
from htsep.experiments.grid import plan as grid_plan
from htsep.study import load_config

from .conftest import REPO


def config_with(tmp_path, text: str = "") -> dict:
    path = tmp_path / "extra.yaml"
    path.write_text(text)
    return load_config([REPO / "config" / "config.yaml", REPO / "config" / "test.yaml", path])


def test_the_expected_mean_after_clipping_matches_sampling():
    rng = np.random.default_rng(0)
    for mean, std, low, high in [(0.3, 0.05, 0.2, 0.4), (0.2, 0.1, 0.001, 0.4), (0.05, 0.05, 0.001, 0.15)]:
        sampled = np.clip(rng.normal(mean, std, 2_000_000), low, high).mean()
        assert clipped_normal_mean(mean, std, low, high) == pytest.approx(sampled, abs=2e-4)


def test_shipped_cells_are_the_factorial_of_means_by_spreads():
    config = load_config([REPO / "config" / "config.yaml"])
    found = pd.DataFrame(cells(config))
    assert sorted(found["dt_mean"].unique()) == [0.2, 0.3, 0.5, 1.0]
    assert sorted(found["dt_spread"].unique()) == [0.0, 0.167, 0.5]
    assert len(found[found["dt_mean"] < 1]) == 9 and set(found.loc[found["dt_mean"] == 1, "dt_spread"]) == {0.0}
    assert (found["expected_mean"] - found["dt_mean"]).abs().max() < config["factorial"]["mean_tolerance"]


@pytest.mark.parametrize(("variant", "message"), [
    ("{name: off_rule, dt: {distribution: normal, mean: 0.3, std: 0.05, clip_min: 0.1, clip_max: 0.5}}",
     r"config key factorial.variants: variant 'off_rule': clipped to \[0.1, 0.5\], but the factorial's rule"),
    ("{name: off_mean, dt: {distribution: normal, mean: 0.05, std: 0.05, clip_min: 0.001, clip_max: 0.15}}",
     r"config key factorial.variants: variant 'off_mean' has mean 0.05\d+ after clipping, \+0.00\d+ from its target"),
    ("{name: skewed, dt: {distribution: gamma, mean: 0.3, std: 0.05}}",
     r"config key factorial.variants: variant 'skewed': a factorial cell is a constant or a clipped normal"),
])
def test_a_cell_off_the_rule_or_off_its_mean_is_refused_before_any_job(tmp_path, variant, message):
    text = (REPO / "config" / "test.yaml").read_text().split("variants:\n", 1)[1].split("grid:", 1)[0]
    name = variant.split(",")[0].split(": ")[1]
    with pytest.raises(ConfigError, match=message):
        config_with(tmp_path, f"variants:\n{text}  - {variant}\nfactorial: {{variants: [uniform_0.3, {name}]}}\n")


def test_cells_shared_with_the_grid_are_the_grids_runs():
    config = load_config([REPO / "config" / "config.yaml"])
    grid = grid_plan.declared(config, config["factorial"]["protocol"])
    shared = set(declared(config)) & set(grid)
    assert {key[2] for key in shared} == {"uniform_0.2", "uniform_0.3", "hts_normal"}
    assert len(shared) == 3 * 2 * 10 and all(declared(config)[key] == grid[key] for key in shared)


def simulated(effects: dict[str, tuple[float, float, float]], seeds: int, rng) -> pd.DataFrame:
    """Runs with a seed effect (s.d. 1 point) and noise (s.d. 0.2 point): variant -> (dt mean, spread, mean acc %)."""
    seed_effect = rng.normal(0, 0.01, seeds)
    return pd.DataFrame([{"variant": v, "dt_mean": m, "dt_spread": s, "seed": seed, "broke": False,
                          "final_test_acc": acc / 100 + seed_effect[seed] + rng.normal(0, 0.002)}
                         for v, (m, s, acc) in effects.items() for seed in range(seeds)])


def test_the_mixed_model_recovers_the_spread_and_mean_effects():
    """A 0.5-point spread effect at mean 0.3 only, a 1-point mean effect; the seed effect (five times the noise) is
    absorbed, so the paired-like CIs are about the noise's width, and the resolution is stated."""
    cells_ = {"u2": (0.2, 0.0, 90.0), "h2": (0.2, 0.167, 90.0), "u3": (0.3, 0.0, 91.0), "h3": (0.3, 0.167, 91.5)}
    runs = simulated(cells_, 20, np.random.default_rng(1))
    table = accuracy_effects(runs, 0.3, 0.05, 0.8).set_index("contrast")
    assert table.loc["u2 - u3", "estimate"] == pytest.approx(-1.0, abs=0.2)
    assert table.loc["h3 - u3", "estimate"] == pytest.approx(0.5, abs=0.2)
    assert table.loc["h3 - u3", "ci_low"] > 0 and table.loc["h2 - u2", "ci_low"] < 0 < table.loc["h2 - u2", "ci_high"]
    averaged = table.loc["spread 0.167 averaged over 2 means"]
    assert averaged["estimate"] == pytest.approx(0.25, abs=0.15)
    assert 0.1 < table.loc["h3 - u3", "detectable"] < 0.35  # 2.8 s.e. of a difference of 20 pairs of s.d. 0.2
    seed_means = 100 * runs.groupby("seed")["final_test_acc"].mean()
    assert table["seed_sd"].iloc[0] == pytest.approx(seed_means.std(ddof=1), abs=0.1)


def test_failures_are_modelled_only_where_every_level_has_both_outcomes():
    rng = np.random.default_rng(2)
    runs = pd.DataFrame([{"dt_mean": m, "dt_spread": s, "broke": bool(rng.random() < p)}
                         for m, s, p in [(0.2, 0.0, 0.2), (0.2, 0.5, 0.5), (0.3, 0.0, 0.2), (0.3, 0.5, 0.5)]
                         for _ in range(60)])
    model = failure_model(runs, 0.3, 0.05).set_index("term")
    spread = model.loc["C(spread, Treatment('0'))[T.0.5]"]
    assert spread["ci_low"] < spread["odds_ratio"] < spread["ci_high"] and spread["odds_ratio"] > 1.5
    separated = runs.assign(broke=runs["dt_spread"] > 0)
    assert failure_model(separated, 0.3, 0.05).empty
