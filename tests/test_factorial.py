"""The dt mean x spread factorial: its cells follow one clipping rule and hit their target means (or the config is
refused before any job runs), cells shared with the grid are the grid's runs, and the mixed model recovers known
effects with honest intervals."""

import numpy as np
import pandas as pd
import pytest

from htsep.config import ConfigError
from htsep.experiments.factorial.analysis import accuracy_effects, failure_counts, failure_model
from htsep.experiments.factorial.paper import factorial_text
from htsep.experiments.factorial.plan import cells, clipped_normal_mean, declared
from htsep.experiments.factorial.plots import factorial_figure
from htsep.experiments.grid import plan as grid_plan
from htsep.study import load_config

from .conftest import REPO, config_with


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
        config_with(tmp_path, f"variants:\n{text}  - {variant}\nfactorial: {{variants: [uniform_0.3, {name}]}}\n",
                    test_config=True)


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


def test_the_section_and_figure_state_each_contrast_its_ci_and_the_failures(tmp_path):
    cells_ = {"uniform_0.2": (0.2, 0.0, 90.0), "hts_normal_0.2": (0.2, 0.167, 90.0), "uniform_0.3": (0.3, 0.0, 91.0),
              "hts_normal": (0.3, 0.167, 91.5)}
    runs = simulated(cells_, 20, np.random.default_rng(1)).assign(dataset="mnist", dataset_label="MNIST")
    runs["realised_dt_mean"] = runs["dt_mean"] + 0.001
    runs.loc[0, "broke"] = True  # one failed uniform_0.2 run
    effects = accuracy_effects(runs[~runs["broke"]], 0.3, 0.05, 0.8).assign(dataset="mnist")
    paths = {"runs": tmp_path / "runs.csv", "effects": tmp_path / "effects.csv", "failures": tmp_path / "failures.csv"}
    runs.to_csv(paths["runs"], index=False)
    effects.to_csv(paths["effects"], index=False)
    failure_counts(runs, 0.05).to_csv(paths["failures"], index=False)
    factorial = {"protocol": "calibrated", "reference_mean": 0.3, "clip_sds": 2, "power": 0.8, "alpha": 0.05}
    factorial_text(paths, tmp_path / "factorial.tex", {"factorial": factorial, "caption": "Cap_tion"})
    text = " ".join((tmp_path / "factorial.tex").read_text().split())
    averaged = effects[effects["contrast"].str.contains("averaged")].iloc[0]
    assert (f"The spread 0.167, averaged over the means, changed the final accuracy by +{averaged['estimate']:.2f} "
            f"points (95\\% CI {averaged['ci_low']:.2f} to {averaged['ci_high']:.2f};") in text
    assert "Failed runs: \\texttt{uniform\\_0.2} 1/20." in text and "within 0.0010 of their targets" in text
    assert "spread 0.167 $-$ none, at mean 0.3 &" in text and "uniform 0.2 $-$ uniform 0.3 &" in text
    assert "Cap\\_tion" in text
    fig = factorial_figure(runs, effects, ["mnist"], factorial)
    assert [t.get_text() for t in fig.axes[1].get_yticklabels()][0] == "mean 0.2 vs 0.3"
    assert len(fig.axes[0].lines) >= 2  # one line per spread
