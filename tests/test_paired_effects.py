"""The grid's paired effects (htsep.experiments.grid.paired_effects) on runs whose effects are known, and the text the
paper writes from them (htsep.experiments.grid.paper): the forest plot's rows, the results, their overview, the
discussion."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from htsep import paired
from htsep.experiments.grid import paired_effects, paper, plots, stats
from htsep.report import tex
from htsep.report.figures import paper_figures

from .test_analysis import make_tables

ANALYSIS = {"collapse_drop": 0.05, "bootstrap": 1000, "alpha": 0.05, "reference": "uniform_0.2",
            "mean_matched": "uniform_0.3", "simulations": 200}
VARIANTS = [{"name": "uniform_0.2", "dt": {"distribution": "constant", "value": 0.2}},
            {"name": "uniform_0.3", "dt": {"distribution": "constant", "value": 0.3}},
            {"name": "hts_normal", "dt": {"distribution": "normal", "mean": 0.3, "std": 0.05}},
            {"name": "uniform_1.0", "dt": {"distribution": "constant", "value": 1.0}}]
SEEDS = 12


def known_accuracies():
    """Per seed a shared part c (initialisation, batch order): uniform 0.2 = 0.90 + c; uniform 0.3 = 0.90 + 2c (twice
    the spread); HTS = 0.91 + c (one point higher, the same spread), its last seed diverges; each with a little own
    noise."""
    rng = np.random.default_rng(3)
    c = rng.normal(0, 0.01, SEEDS)
    return {"uniform_0.2": 0.90 + c + rng.normal(0, 0.0005, SEEDS),
            "uniform_0.3": 0.90 + 2 * c + rng.normal(0, 0.0005, SEEDS),
            "hts_normal": 0.91 + c + rng.normal(0, 0.0005, SEEDS)}


def known_table(analysis=ANALYSIS):
    acc = known_accuracies()
    runs, epochs = make_tables({("mnist", v, s): [0.5, a[s], a[s]] for v, a in acc.items() for s in range(SEEDS)},
                               diverged_at={("mnist", "hts_normal", SEEDS - 1): 3})
    return paired_effects.paired_effects(stats.run_measures(runs, epochs, 0.05), analysis), acc


def test_paired_effects_recover_the_known_effects():
    table, acc = known_table()
    assert list(table.columns) == paired_effects.COLUMNS
    rows = table.set_index(["variant", "baseline"])
    assert list(rows.index) == [("uniform_0.3", "uniform_0.2"), ("hts_normal", "uniform_0.2"),
                                ("hts_normal", "uniform_0.3")]
    hts = rows.loc[("hts_normal", "uniform_0.2")]
    a, b = acc["hts_normal"][:-1], acc["uniform_0.2"][:-1]  # the diverged seed leaves the accuracy pairs
    assert hts["n_pairs"] == SEEDS - 1 and hts["failures_n_pairs"] == SEEDS
    assert hts["accuracy_difference"] == pytest.approx(np.mean(a - b), rel=1e-12)
    assert hts["accuracy_ci_low"] < hts["accuracy_difference"] < hts["accuracy_ci_high"]
    assert 0.009 < hts["accuracy_ci_low"] and hts["accuracy_ci_high"] < 0.011
    assert hts["accuracy_p"] == pytest.approx(sps.wilcoxon(a, b).pvalue, rel=1e-12)
    assert hts["spread_sd_ratio"] == pytest.approx(np.std(a, ddof=1) / np.std(b, ddof=1))
    assert (hts["accuracy_verdict"], hts["spread_verdict"]) == ("higher", "inconclusive")
    # the run that diverged is a failure of the variant only: one discordant pair, McNemar's p = 1
    assert (hts["failures_variant"], hts["failures_only_variant"], hts["failures_only_baseline"]) == (1, 1, 0)
    assert hts["failures_p"] == 1.0 and hts["failures_verdict"] == "inconclusive"
    assert rows.loc[("uniform_0.3", "uniform_0.2"), "spread_verdict"] == "higher"  # twice the spread
    assert rows.loc[("hts_normal", "uniform_0.3"), "spread_verdict"] == "lower"
    assert rows.loc[("uniform_0.3", "uniform_0.2"), "spread_sd_ratio"] == pytest.approx(2, rel=0.1)
    # one Holm family: the three tests of every comparison
    p = table[["accuracy_p", "spread_p", "failures_p"]].to_numpy(float)
    holm = paired.holm(p.ravel()).reshape(p.shape)
    np.testing.assert_allclose(table[["accuracy_p_holm", "spread_p_holm", "failures_p_holm"]], holm)
    assert (table["resolution_alpha"] == 0.05 / 9).all()
    # the resolution: the own noise (s.d. of the differences ~0.0007) is resolved far below the 1-point effect
    assert 0 < hts["accuracy_resolution"] <= 0.002
    assert hts["accuracy_resolution"] == paired.resolution(
        "accuracy", paired.spread(a, b), SEEDS - 1, 0.05 / 9, paired_effects.POWER, 200, 0)


def test_identical_arms_are_untestable_and_a_standard_ep_baseline_is_compared_where_trained():
    runs, epochs = make_tables({("mnist", v, s): [0.5, 0.9 + 0.01 * s] for v in ("uniform_0.2", "uniform_0.3")
                                for s in range(4)})
    row = paired_effects.paired_effects(stats.run_measures(runs, epochs, 0.05), {**ANALYSIS, "bootstrap": 100}).iloc[0]
    assert math.isnan(row["accuracy_p"]) and row["accuracy_verdict"] == "untestable"
    assert row["accuracy_difference"] == 0 and row["spread_sd_ratio"] == 1
    names = ["uniform_0.2", "uniform_0.3", "hts_normal", "uniform_1.0"]
    assert stats.comparisons(names, ANALYSIS) == [
        ("uniform_0.3", "uniform_0.2"), ("hts_normal", "uniform_0.2"), ("uniform_1.0", "uniform_0.2"),
        ("hts_normal", "uniform_0.3"), ("uniform_1.0", "uniform_0.3"), ("hts_normal", "uniform_1.0")]
    assert stats.comparisons(names[:3], ANALYSIS) == [
        ("uniform_0.3", "uniform_0.2"), ("hts_normal", "uniform_0.2"), ("hts_normal", "uniform_0.3")]


def test_forest_rows_follow_the_config_order():
    table, _ = known_table({**ANALYSIS, "bootstrap": 100, "simulations": 100})
    other = table.assign(dataset="fashion_mnist", dataset_label="Fashion-MNIST")
    fig = plots.paired_forest(pd.concat([other, table]), ["mnist", "fashion_mnist"], VARIANTS)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels[0] == "MNIST · uniform Δt=0.3 vs uniform Δt=0.2" and labels[3].startswith("Fashion-MNIST")
    assert len(labels) == 6


def study(effects: list[dict], label: str = "MNIST") -> paper.Study:
    """A one-protocol study of three variants on one dataset whose paired effects are ``effects`` (each: variant,
    baseline and the values that differ from an inconclusive, unresolved effect)."""
    acc = known_accuracies()
    runs, epochs = make_tables({("mnist", v, s): [0.5, a[s]] for v, a in acc.items() for s in range(SEEDS)})
    runs, epochs = runs.assign(device="cpu", dataset_label=label), epochs.assign(dataset_label=label)
    table, summary, gaps = stats.analyze(runs, epochs, {**ANALYSIS, "bootstrap": 100})
    base = {"protocol": "lab", "dataset": "mnist", "dataset_label": label, "n_pairs": SEEDS,
            "accuracy_p": 0.5, "accuracy_p_holm": 1.0, "accuracy_verdict": "inconclusive", "accuracy_resolution": 0.004,
            "spread_p": 0.5, "spread_p_holm": 1.0, "spread_verdict": "inconclusive", "spread_resolution": 2.5,
            "failures_n_pairs": SEEDS, "failures_variant": 0, "failures_baseline": 0, "failures_only_variant": 0,
            "failures_only_baseline": 0, "failures_p": 1.0, "failures_p_holm": 1.0, "failures_verdict": "inconclusive",
            "resolution_alpha": 0.05 / 9}
    effects = pd.DataFrame([base | e for e in effects]).reindex(columns=paired_effects.COLUMNS)
    dt = pd.DataFrame({"protocol": "lab", "variant": ["uniform_0.2", "hts_normal"], "dt": [0.2, 0.3]})
    setup = {"datasets": ["mnist"], "data": {"mnist": {"split": "official"}}, "variants": VARIANTS[:3],
             "protocols": {"lab": {}}, "run_protocols": ["lab"], "figures": paper_figures(["lab"]),
             "results_figures": paper_figures(["lab"], "results"), "seeds": list(range(SEEDS)),
             "model": {"hidden": [256]}, "training": {"epochs": 1, "batch_size": 64, "lr": [0.4, 0.02], "momentum": 0.9,
                                                       "weight_decay": 0.0, "beta": 0.1, "free_steps": 60,
                                                       "nudged_steps": 12}}
    return paper.Study("lab", runs, summary, table.fillna({"note": ""}), gaps, effects, dt, setup, ANALYSIS)


def effect(variant, baseline, difference, low, high, ratio, ratio_low, ratio_high, **more):
    return {"variant": variant, "baseline": baseline, "accuracy_difference": difference, "accuracy_ci_low": low,
            "accuracy_ci_high": high, "spread_sd_ratio": ratio, "spread_ci_low": ratio_low,
            "spread_ci_high": ratio_high, **more}


INCONCLUSIVE = [effect("uniform_0.3", "uniform_0.2", 0.001, -0.002, 0.004, 1.9, 1.2, 3.0),
                effect("hts_normal", "uniform_0.2", 0.0002, -0.001, 0.0011, 0.9, 0.6, 1.4),
                effect("hts_normal", "uniform_0.3", -0.0005, -0.0012, 0.0003, 0.5, 0.3, 0.8,
                       accuracy_resolution=0.003, spread_resolution=math.nan)]


def words(text: str) -> str:
    return " ".join(text.split())


def test_the_overview_states_each_paired_effect_of_heterogeneity_and_names_the_holdout():
    text = words(paper.generate([study(INCONCLUSIVE, "KMNIST (test-set holdout)")])["overview"])
    assert ("On KMNIST (test-set holdout) under the lab protocol, heterogeneous $\\dt$ changed final test accuracy by "
            "$-$0.05 points (\\CILevelPct\\,\\% CI $-$0.12 to +0.03) against the mean-matched uniform $\\Delta t=0.3$ "
            "and +0.02 points (\\CILevelPct\\,\\% CI $-$0.10 to +0.11) against the reference uniform $\\Delta t=0.2$, "
            "and the s.d.\\ of final accuracy across seeds by a factor of 0.50 (\\CILevelPct\\,\\% CI 0.30 to 0.80) "
            "and 0.90 (\\CILevelPct\\,\\% CI 0.60 to 1.40), respectively.") in text
    assert "none of these effects was resolved" in text
    # resolutions of the two heterogeneous comparisons: 0.4 and 0.3 points; s.d. ratio 2.5 and none up to 4
    assert ("find with \\PowerPct\\,\\% power accuracy differences of 0.3 to 0.4 points and s.d.\\ ratios of 2.5 "
            "(none up to 4 in 1 of 2).") in text
    assert "uniform_0.3 vs" not in text and "1.90" not in text  # uniform against uniform is no effect of heterogeneity


def test_results_name_the_resolved_effects_and_the_resolution_of_the_others():
    resolved = [*INCONCLUSIVE[:2], effect("hts_normal", "uniform_0.3", 0.012, 0.009, 0.015, 0.5, 0.3, 0.8,
                                          accuracy_p=0.001, accuracy_p_holm=0.009, accuracy_verdict="higher",
                                          accuracy_resolution=math.nan)]
    generated = paper.generate([study(resolved)])
    text = words(generated["results"])
    assert ("Final accuracy differed for HTS (normal) against the mean-matched uniform $\\Delta t=0.3$ on MNIST, by "
            "+1.20 points (\\CILevelPct\\,\\% CI +0.90 to +1.50), $p_{\\mathrm{Holm}}=0.009$.") in text
    assert "Of the 9 tests of this protocol, 1 had a Holm-adjusted $p<\\Alpha$." in text
    assert "the Wilcoxon test of the 2 inconclusive accuracy differences finds differences of 0.4 points" in text
    assert "\\textbf{+1.20 [+0.90, +1.50]} & $>$3" in text  # bold: resolved; its resolution beyond the simulated range
    assert "\\figwidth{lab/paired_effects.pdf}" in text and "\\label{tab:paired:lab}" in text
    verdict = words(generated["verdict"])
    assert ("Final accuracy was resolvably higher with heterogeneous $\\dt$ for HTS (normal) against uniform "
            "$\\Delta t=0.3$ on MNIST.") in verdict
    assert "neither supports nor contradicts the stability claim; its seeds resolve s.d.\\ ratios of 2.5." in verdict
    none = words(paper.generate([study(INCONCLUSIVE)])["results"])
    assert "No paired effect was resolved: none of the 9 tests of this protocol had a Holm-adjusted" in none


def test_a_step_size_effect_is_not_read_as_heterogeneity_and_unreachable_levels_are_named():
    """A spread resolved for a heterogeneous variant and for the larger uniform step alike against the reference is
    reported as not separating heterogeneity from the step; the overview groups resolved effects per dataset and
    baseline; with a family so large that no Wilcoxon test of the seeds can reach Holm's strictest level, the text
    says so instead of quoting a resolution."""
    smaller = {"spread_p": 1e-4, "spread_p_holm": 1e-3, "spread_verdict": "lower"}
    unreachable = {"accuracy_resolution": math.nan, "resolution_alpha": 0.05 / 63, "n_pairs": 10}
    generated = paper.generate([study([
        effect("uniform_0.3", "uniform_0.2", 0.001, -0.002, 0.004, 0.05, 0.02, 5.5, **smaller, **unreachable),
        effect("hts_normal", "uniform_0.2", 0.0002, -0.001, 0.0011, 0.04, 0.03, 3.2, **smaller, **unreachable),
        effect("hts_normal", "uniform_0.3", -0.0005, -0.0012, 0.0003, 0.8, 0.5, 1.4, **unreachable)])])
    verdict = words(generated["verdict"])
    assert ("resolvably smaller with heterogeneous $\\dt$ for HTS (normal) against uniform $\\Delta t=0.2$ on MNIST, "
            "as the stability claim has it") in verdict
    assert ("A uniform step did the same (uniform $\\Delta t=0.3$ against uniform $\\Delta t=0.2$ on MNIST): here the "
            "data do not separate heterogeneity from a different mean step.") in verdict
    assert ("no accuracy difference of any size (the smallest $p$ a Wilcoxon test of these pairs can give, 0.0020, "
            "is not below Holm's strictest level, 0.0008)") in verdict
    overview = words(generated["overview"])
    assert ("resolved the s.d.\\ ratio of HTS (normal) to uniform $\\Delta t=0.2$ on MNIST (0.04); the others are "
            "inconclusive.") in overview


def test_signed_differences():
    assert [tex.signed(x) for x in (0.0234, -0.1, 0.0001, -0.0001, math.nan)] == ["+0.02", "$-$0.10", "0.00", "0.00",
                                                                                  "--"]
