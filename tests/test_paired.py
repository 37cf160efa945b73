"""Paired tests of arms that share seeds (htsep.paired) against known values, their null rates and their power."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from htsep import paired

A = np.array([0.871, 0.865, 0.880, 0.858, 0.874, 0.869, 0.862, 0.877, 0.866, 0.870])
B = np.array([0.860, 0.861, 0.870, 0.850, 0.869, 0.866, 0.851, 0.872, 0.860, 0.863])


def test_wilcoxon_and_mean_difference_on_known_pairs():
    out = paired.wilcoxon(A, B)
    assert out["p"] == pytest.approx(sps.wilcoxon(A, B).pvalue) and out["n_pairs"] == 10
    assert out["p"] < 0.01  # every pair favours A
    diff = paired.mean_difference(A, B, 2000, 0.95, seed=0)
    assert diff["difference"] == pytest.approx((A - B).mean())
    assert diff["ci_low"] < diff["difference"] < diff["ci_high"] and diff["ci_low"] > 0
    assert paired.mean_difference(A, B, 2000, 0.95, seed=0) == diff  # seeded
    assert math.isnan(paired.wilcoxon(A, A)["p"])  # no difference at all: untestable, not p = 1
    with_nan = paired.wilcoxon(np.append(A, np.nan), np.append(B, 0.5))
    assert with_nan["n_pairs"] == 10  # a run that failed in one arm leaves the pair


def test_pitman_morgan_finds_a_doubled_spread_and_holds_its_level_under_the_null():
    rng = np.random.default_rng(1)
    shared = rng.normal(0, 0.01, 40)  # the seed's common part (initialisation, batch order)
    a = 0.87 + shared + rng.normal(0, 0.004, 40)
    b = 0.87 + shared + rng.normal(0, 0.004, 40)
    wide = 0.87 + 2 * shared + rng.normal(0, 0.008, 40)
    out = paired.pitman_morgan(wide, b, 500, 0.95, seed=0)
    assert out["p"] < 1e-3 and out["ci_low"] < out["sd_ratio"] < out["ci_high"] and out["sd_ratio"] > 1.5
    assert paired.pitman_morgan(a, b, 500, 0.95, seed=0)["p"] > 0.05
    # type I error: equal variances, correlated pairs, n = 10
    def null(rng, k):
        common = rng.normal(0, 1, (k, 10))
        return common + rng.normal(0, 1, (k, 10)), common + rng.normal(0, 1, (k, 10))
    rate = paired.power(null, paired.pitman_morgan_p, 0.05, 2000, seed=2)
    assert 0.03 < rate < 0.07
    x, y = null(np.random.default_rng(5), 3)  # the simulations' test is the test, one design per row
    assert paired.pitman_morgan_p(x, y) == pytest.approx(
        [paired.pitman_morgan(a, b, 0, 0.95, 0)["p"] for a, b in zip(x, y, strict=True)], rel=1e-9)


def test_mcnemar_counts_only_discordant_seeds():
    failed_a = [True] * 5 + [False] * 5
    out = paired.mcnemar_exact(failed_a, [False] * 10)
    assert (out["only_a"], out["only_b"]) == (5, 0) and out["p"] == pytest.approx(2 * 0.5**5)
    both = paired.mcnemar_exact([True, True, False], [True, True, False])
    assert both["p"] == 1.0 and both["both"] == 2


def test_tost_supports_equivalence_only_within_a_margin_the_data_can_resolve():
    assert paired.tost(A, A + 0.0005 * np.sign(np.arange(10) - 4.5), 0.002)["p"] < 0.01
    assert paired.tost(A, B, 0.002)["p"] > 0.5  # a real difference of 0.6 points is not within 0.2


def test_holm_adjusts_within_the_family():
    assert paired.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    out = paired.holm([0.02, np.nan, 0.01])
    assert math.isnan(out[1]) and out[0] == pytest.approx(0.02) and out[2] == pytest.approx(0.02)


def test_detectable_effect_matches_the_paired_t_power_formula():
    """n = 10 pairs, differences of s.d. 1, the paired t-test at 0.05: 80% power near d = 0.99."""
    def simulate(effect, rng, k):
        return rng.normal(effect, 1.0, (k, 10)), np.zeros((k, 10))

    def t_test(x, y):
        return sps.ttest_rel(x, y, axis=-1).pvalue

    effect = paired.detectable(np.arange(0.5, 1.6, 0.05), simulate, t_test, 0.05, 0.8, 2000, seed=3)
    assert 0.9 <= effect <= 1.1


def test_resolution_shrinks_with_seeds_and_with_the_pairing():
    """The accuracy resolution follows the s.d. of the differences (Wilcoxon near the paired-t value, ~0.99 s.d. at
    10 pairs and 5% two-sided); more seeds resolve less, and arms correlated through the seed resolve a smaller s.d.
    ratio than independent ones."""
    rng = np.random.default_rng(0)
    common = rng.normal(0, 0.01, 40)
    a, b = common + rng.normal(0, 0.002, 40), common + rng.normal(0, 0.002, 40)
    observed = paired.spread(a, b)
    assert observed["correlation"] > 0.9 and observed["n_pairs"] == 40
    at10 = paired.resolution("accuracy", observed, 10, 0.05, 0.8, 400, 0)
    assert 0.95 * observed["sd_difference"] < at10 < 1.35 * observed["sd_difference"]
    assert paired.resolution("accuracy", observed, 40, 0.05, 0.8, 400, 0) < at10
    independent = observed | {"correlation": 0.0}
    assert (paired.resolution("spread", observed, 20, 0.05, 0.8, 400, 0)
            < paired.resolution("spread", independent, 20, 0.05, 0.8, 400, 0))
    assert paired.spread([0.1, 0.2], [0.1, 0.3]) is None  # fewer than 3 pairs


def test_decide_adjusts_each_declared_family_with_its_missing_tests_and_resolves_at_its_strictest_level():
    spec = {"alpha": 0.05, "power": 0.8, "simulations": 200, "bootstrap": 200, "ci_level": 0.95, "bootstrap_seed": 0,
            "equivalence": {"accuracy": 0.002, "sd_ratio": 1.5}}
    arms = pd.DataFrame({"a": A, "b": B, "failed_a": [False] * 10, "failed_b": [False] * 9 + [True]})
    rows = [{"family": family, **row} for family, name in (("x", "one"), ("y", "two"))
            for row in paired.contrast_tests(arms, name, "v", "u", spec)]
    table = pd.DataFrame(rows)
    held = table["p"].fillna(1.0)
    decided = paired.decide(table, held, ["family"], lambda key: {"x": 6, "y": 3}[key[0]],
                            {("one",): paired.spread(A, B), ("two",): paired.spread(A, B)},
                            lambda row: (row["contrast"],), spec)
    x, y = decided[decided["family"] == "x"], decided[decided["family"] == "y"]
    assert x["p_holm"].tolist() == pytest.approx(list(paired.holm([*held[x.index], 1, 1, 1])[:3]))  # 3 tests missing
    assert y["p_holm"].tolist() == pytest.approx(list(paired.holm(held[y.index])))
    stricter, looser = x["p_holm"].to_numpy(), y["p_holm"].to_numpy()  # the same tests, in a larger family
    assert (stricter >= looser).all() and (stricter > looser).any()
    accuracy = decided[decided["test"] == "accuracy"].set_index("family")["detectable"]
    assert accuracy["x"] == paired.resolution("accuracy", paired.spread(A, B), 10, 0.05 / 6, 0.8, 200, 0)
    assert accuracy["y"] == paired.resolution("accuracy", paired.spread(A, B), 10, 0.05 / 3, 0.8, 200, 0)
    assert accuracy["x"] > accuracy["y"]
    assert decided.loc[decided["test"] == "failures", "detectable"].isna().all()
    assert decided["verdict"].tolist() == [paired.verdict(row, 0.05) for _, row in decided.iterrows()]
    assert table.columns.tolist() == [c for c in decided.columns if c not in ("p_holm", "detectable", "verdict")]
