"""htsep.experiments.grid.stats, htsep.report.style and htsep.report.tex (with its templates) on small hand-made tables
(no workflow run)."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from htsep.experiments.grid import paired_effects, paper, stats
from htsep.outcomes import accuracy_drops, is_collapse
from htsep.report import style, tex
from htsep.report.figures import paper_figures

ANALYSIS = {"collapse_drop": 0.05, "bootstrap": 2000, "alpha": 0.05, "reference": "uniform_0.2",
            "mean_matched": "uniform_0.3", "simulations": 100}


def make_tables(curves: dict, diverged_at: dict | None = None, dead: dict | None = None, protocol: str = "lab"):
    """(runs, epochs) from {(dataset, variant, seed): [test_acc per epoch]}; ``diverged_at`` maps a run to the
    epoch it diverged in (that epoch's row has NaN metrics), ``dead`` to classes never predicted at its end."""
    diverged_at, dead = diverged_at or {}, dead or {}
    runs, epochs = [], []
    for (dataset, variant, seed), accs in curves.items():
        key = {"protocol": protocol, "dataset": dataset, "dataset_label": dataset.upper(), "split": "official",
               "variant": variant, "seed": seed}
        div = diverged_at.get((dataset, variant, seed))
        rows = []
        for epoch, acc in enumerate(accs, start=1):
            bad = epoch == div
            rows.append({**key, "epoch": epoch, "train_acc": np.nan if bad else acc, "test_acc": np.nan if bad else acc,
                         "free_residual": np.nan if bad else 1e-3 / epoch, "diverged": bad,
                         "classes_never_predicted": np.nan if bad else (dead.get((dataset, variant, seed), 0)
                                                                        if epoch == len(accs) else 0)})
        epochs += rows
        finite = [r["test_acc"] for r in rows if not r["diverged"]]
        final = np.nan if div else accs[-1]
        runs.append({**key, "final_test_acc": final, "final_train_acc": final,
                     "best_test_acc": max(finite) if finite else np.nan, "diverged": div is not None,
                     "diverged_epoch": div, "wall_seconds": 1.0})
    runs = pd.DataFrame(runs).astype({"diverged_epoch": "Int64"})
    return runs, pd.DataFrame(epochs)


FINAL = {
    "uniform_0.2": [0.90, 0.80, 0.95, 0.85, 0.70],
    "uniform_0.3": [0.91, 0.89, 0.93, 0.90, 0.88],
    "hts_normal": [0.92, 0.925, 0.93, 0.915, 0.92],
}


@pytest.fixture
def grid():
    curves = {("mnist", v, s): [0.5 + 0.01 * s, acc] for v, accs in FINAL.items() for s, acc in enumerate(accs)}
    return make_tables(curves)


def test_summary_equals_numpy(grid):
    runs, epochs = grid
    _, summary, _ = stats.analyze(runs, epochs, ANALYSIS)
    for variant, accs in FINAL.items():
        row = summary[summary["variant"] == variant].iloc[0]
        x = np.array(accs)
        assert row["final_acc_mean"] == pytest.approx(x.mean())
        assert row["final_acc_std"] == pytest.approx(x.std(ddof=1))
        assert row["final_acc_median"] == pytest.approx(np.median(x))
        assert row["final_acc_iqr"] == pytest.approx(np.percentile(x, 75) - np.percentile(x, 25))
        assert row["final_acc_ci_low"] <= x.mean() <= row["final_acc_ci_high"]
        assert x.min() <= row["final_acc_ci_low"] and row["final_acc_ci_high"] <= x.max()
        # epoch 1 accuracies are 0.50..0.54 for every variant: the spread per epoch, then its mean
        spread = [np.std(0.5 + 0.01 * np.arange(5), ddof=1), x.std(ddof=1)]
        assert row["seed_std_mean"] == pytest.approx(np.mean(spread))
        assert row["tv_mean"] == pytest.approx(np.mean(np.abs(x - (0.5 + 0.01 * np.arange(5)))))
        assert row["n_runs"] == 5 and row["n_diverged"] == 0
    again = stats.analyze(runs, epochs, ANALYSIS)[1]
    pd.testing.assert_frame_equal(summary, again)  # the bootstrap is seeded


def test_brown_forsythe_is_levene_median(grid):
    runs, epochs = grid
    table, _, _ = stats.analyze(runs, epochs, ANALYSIS)
    row = table[(table["variant"] == "hts_normal") & (table["baseline"] == "uniform_0.2")
                & (table["test"] == "brown_forsythe")].iloc[0]
    expected = sps.levene(FINAL["hts_normal"], FINAL["uniform_0.2"], center="median")
    assert row["p"] == pytest.approx(expected.pvalue, rel=1e-12)
    assert row["statistic"] == pytest.approx(expected.statistic, rel=1e-12)
    ratio = np.std(FINAL["hts_normal"], ddof=1) / np.std(FINAL["uniform_0.2"], ddof=1)
    assert row["effect_size"] == pytest.approx(ratio)
    assert row["n_variant"] == row["n_baseline"] == 5 and row["note"] == ""
    assert set(table.columns) == set(stats.STATS_COLUMNS)
    # every variant against the reference, the HTS variant also against the mean-matched control
    pairs = set(zip(table["variant"], table["baseline"], strict=True))
    assert pairs == {("uniform_0.3", "uniform_0.2"), ("hts_normal", "uniform_0.2"), ("hts_normal", "uniform_0.3")}
    mw = table[(table["variant"] == "hts_normal") & (table["baseline"] == "uniform_0.2")
               & (table["test"] == "mann_whitney")].iloc[0]
    assert mw["p"] == pytest.approx(sps.mannwhitneyu(FINAL["hts_normal"], FINAL["uniform_0.2"]).pvalue)
    assert (table["p_holm"].dropna() >= table.loc[table["p_holm"].notna(), "p"]).all()


def test_holm_known_values():
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])
    out = stats.holm([0.02, np.nan, 0.01])
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.02)


def test_holm_family_is_per_test():
    runs, epochs = make_tables({("d1", v, s): [acc] for v, accs in FINAL.items() for s, acc in enumerate(accs)}
                               | {("d2", v, s): [acc] for v, accs in FINAL.items() for s, acc in enumerate(accs)})
    table, _, _ = stats.analyze(runs, epochs, ANALYSIS)
    bf = table[table["test"] == "brown_forsythe"]
    assert bf["p_holm"].to_numpy() == pytest.approx(stats.holm(bf["p"].to_numpy()))
    everything, _, _ = stats.analyze(runs, epochs, {**ANALYSIS, "holm_family": "all"})
    assert everything["p_holm"].to_numpy() == pytest.approx(stats.holm(everything["p"].to_numpy()), nan_ok=True)


def test_collapse_detection():
    curves = {
        ("mnist", "uniform_0.2", 0): [0.80, 0.74, 0.78],  # a 6-point drop: a collapse
        ("mnist", "uniform_0.2", 1): [0.80, 0.76, 0.80],  # a 4-point drop: not one
        ("mnist", "uniform_0.2", 2): [0.90, 0.85, 0.86],  # exactly 5 points: not larger than the threshold
        ("mnist", "uniform_0.2", 3): [0.90, 0.80, 0.70],  # two collapses in one run
    }
    runs, epochs = make_tables(curves, dead={("mnist", "uniform_0.2", 1): 2})
    m = stats.run_measures(runs, epochs, 0.05).set_index("seed")
    assert m["n_collapse_events"].tolist() == [1, 0, 0, 2]
    assert m["collapsed"].tolist() == [True, False, False, True]
    assert m["unstable"].tolist() == [True, False, False, True]
    assert m["dead_classes"].tolist() == [False, True, False, False]
    assert m.loc[0, "max_drop"] == pytest.approx(0.06)
    assert m.loc[3, "tv"] == pytest.approx(0.2) and m.loc[0, "tv"] == pytest.approx(0.10)
    assert m.loc[0, "tv_excess"] == pytest.approx(0.08)
    summary = stats.summarize(m.reset_index(), epochs, ANALYSIS).iloc[0]
    assert (summary["n_collapsed"], summary["n_collapse_events"], summary["n_dead_classes"]) == (2, 3, 1)
    assert summary["collapse_rate"] == pytest.approx(0.5)
    assert list(is_collapse(accuracy_drops([0.9, 0.84, 0.9, np.nan, 0.85]), 0.05)) == [True, False, False]


def test_divergence_is_counted_and_excluded_from_accuracy_tests():
    curves = {("mnist", v, s): [0.5, acc, acc] for v, accs in FINAL.items() for s, acc in enumerate(accs)}
    runs, epochs = make_tables(curves, diverged_at={("mnist", "hts_normal", 4): 3, ("mnist", "hts_normal", 1): 2})
    table, summary, _ = stats.analyze(runs, epochs, ANALYSIS)
    row = summary[summary["variant"] == "hts_normal"].iloc[0]
    assert (row["n_diverged"], row["n_unstable"], row["n_finite"]) == (2, 2, 3)
    assert row["diverged_epochs"] == "2;3" and row["first_diverged_epoch"] == 2
    assert row["final_acc_mean"] == pytest.approx(np.mean([0.92, 0.93, 0.915]))
    bf = table[(table["variant"] == "hts_normal") & (table["baseline"] == "uniform_0.2")].set_index("test")
    assert bf.loc["brown_forsythe", "n_variant"] == 3 and bf.loc["fisher_unstable", "n_variant"] == 5
    assert bf.loc["fisher_unstable", "p"] == pytest.approx(sps.fisher_exact([[2, 3], [0, 5]]).pvalue)
    assert bf.loc["fisher_unstable", "effect_size"] == pytest.approx(0.4)


def test_degenerate_groups_give_nan_and_note():
    one = stats.brown_forsythe([0.9], [0.8, 0.85, 0.9])
    assert math.isnan(one["p"]) and "fewer than 2" in one["note"]
    flat = stats.brown_forsythe([0.9, 0.9, 0.9], [0.8, 0.8, 0.8])
    assert math.isnan(flat["p"]) and flat["note"] == "zero variance in both groups"
    equal = stats.mann_whitney([0.9, 0.9], [0.9, 0.9, 0.9])
    assert math.isnan(equal["p"]) and equal["note"] == "all values equal"
    welch = stats.welch_t([0.9, 0.9], [0.8, 0.8])
    assert math.isnan(welch["p"]) and welch["note"] == "zero variance in both groups"
    fisher = stats.fisher_unstable([False, False], [False, False, False])
    assert math.isnan(fisher["p"]) and "no unstable" in fisher["note"]
    assert math.isnan(stats.mann_whitney([np.nan, 0.9], [0.8, 0.7])["p"])  # one finite value left
    # the whole pipeline on a grid of one seed: NaN everywhere, notes, no crash
    runs, epochs = make_tables({("mnist", v, 0): [0.5, 0.9] for v in FINAL})
    table, summary, _ = stats.analyze(runs, epochs, ANALYSIS)
    assert table["p"].isna().all() and table["p_holm"].isna().all() and (table["note"] != "").all()
    assert summary["final_acc_std"].isna().all() and summary["final_acc_ci_low"].isna().all()


def test_cliffs_delta_known_values():
    assert stats.cliffs_delta([4, 5], [1, 2]) == 1.0
    assert stats.cliffs_delta([1, 2], [4, 5]) == -1.0
    assert stats.cliffs_delta([1, 2, 3], [1, 2, 3]) == 0.0
    assert stats.cliffs_delta([1, 3], [2, 2, 0]) == pytest.approx(1 / 3)
    x, y = [0.91, 0.95, 0.88, 0.97], [0.90, 0.86, 0.92]
    u = sps.mannwhitneyu(x, y).statistic
    assert stats.cliffs_delta(x, y) == pytest.approx(2 * u / (len(x) * len(y)) - 1)
    assert stats.cohens_d([1, 2, 3], [2, 3, 4]) == pytest.approx(-1.0)


def test_variant_styles():
    variants = [{"name": "uniform_0.2", "dt": {"distribution": "constant", "value": 0.2}},
                {"name": "hts_normal", "dt": {"distribution": "normal", "mean": 0.3, "std": 0.05}},
                {"name": "uniform_0.3", "dt": {"distribution": "constant", "value": 0.3}},
                {"name": "hts_gamma", "dt": {"distribution": "gamma", "mean": 0.3, "std": 0.05}}]
    colours = style.variant_colours(variants)
    assert colours["uniform_0.2"] in style.UNIFORM_COLOURS and colours["uniform_0.3"] in style.UNIFORM_COLOURS
    assert colours["hts_normal"] in style.HTS_COLOURS and colours["hts_gamma"] in style.HTS_COLOURS
    assert len(set(colours.values())) == 4
    labels = style.variant_labels(variants)
    assert labels["uniform_0.2"] == "uniform Δt=0.2" and labels["hts_gamma"] == "HTS (gamma)"
    twins = style.variant_labels([variants[1], {**variants[1], "name": "hts_wide"}])
    assert twins["hts_wide"] == "HTS (normal) [hts_wide]"
    assert style.variant_labels(variants, tex=True)["uniform_0.3"] == r"uniform $\Delta t=0.3$"


def _study(table_edit=None):
    values = {"uniform_0.2": [0.90, 0.80, 0.95, 0.85, 0.70], "hts_normal": [0.92, 0.925, 0.93, 0.915, 0.92]}
    runs, epochs = make_tables({("mnist", v, s): [acc] for v, accs in values.items() for s, acc in enumerate(accs)})
    runs = runs.assign(device="cpu", dataset_label="MNIST")
    epochs = epochs.assign(dataset_label="MNIST")
    table, summary, gaps = stats.analyze(runs, epochs, ANALYSIS)
    effects = paired_effects.paired_effects(stats.run_measures(runs, epochs, 0.05), ANALYSIS)
    if table_edit:
        table = table_edit(table)
    variants = [{"name": "uniform_0.2", "dt": {"distribution": "constant", "value": 0.2}},
                {"name": "hts_normal", "dt": {"distribution": "normal", "mean": 0.3, "std": 0.05}}]
    dt = pd.DataFrame({"protocol": "lab", "variant": ["uniform_0.2"] * 3 + ["hts_normal"] * 3,
                       "dt": [0.2] * 3 + [0.25, 0.3, 0.35]})
    setup = {"datasets": ["mnist"], "data": {"mnist": {"split": "official"}}, "variants": variants,
             "protocols": {"lab": {}}, "run_protocols": ["lab"], "figures": paper_figures(["lab"]),
             "results_figures": paper_figures(["lab"], "results"), "seeds": [0, 1, 2, 3, 4],
             "model": {"hidden": [256]}, "training": {"epochs": 1, "batch_size": 64, "lr": [0.4, 0.02], "momentum": 0.9,
                                                       "weight_decay": 0.0, "beta": 0.1, "free_steps": 60,
                                                       "nudged_steps": 12}}
    return paper.Study("lab", runs, summary, table.fillna({"note": ""}), gaps, effects, dt, setup, ANALYSIS)


def test_the_appendix_table_of_unpaired_tests_follows_the_stats_table():
    def set_p(value):
        def edit(table):
            bf = table["test"] == "brown_forsythe"
            return table.assign(p_holm=np.where(bf, value, table["p_holm"]))
        return edit

    generated = paper.generate([_study(set_p(0.01))])
    assert set(generated) == set(paper.GENERATED)
    assert r"& \textbf{0.010} &" in generated["stats_table"]  # bold: Holm-corrected p below alpha
    assert r"& 0.200 &" in paper.generate([_study(set_p(0.2))])["stats_table"]
    assert r"\newcommand{\NSeeds}{5}" in generated["macros"] and r"\newcommand{\LearningRates}" in generated["macros"]
    assert r"\newcommand{\NSimulations}{100}" in generated["macros"]
    assert "official training and test splits" in generated["limitations"]


def test_paper_holdout_limitation_and_escaping():
    study = _study()
    holdout = {"split": "test-holdout", "holdout_fraction": 0.2, "split_seed": 0}
    study.setup = {**study.setup, "data": {"mnist": holdout}}
    text = paper.generate([study])["limitations"]
    assert "80\\,\\% of the official test set" in text and "remaining 20\\,\\%" in text
    assert tex.tex_escape("a_b & 5%") == r"a\_b \& 5\%"
    assert tex.pval(0.0004) == r"$<$0.001" and tex.pval(float("nan")) == "--" and tex.pval(0.0456) == "0.046"


def test_missing_latex_names_the_debian_packages(monkeypatch, tmp_path):
    monkeypatch.setattr(tex.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="latexmk texlive-latex-base texlive-latex-recommended "
                                           "texlive-latex-extra texlive-fonts-recommended"):
        tex.build_pdf(tmp_path / "paper.tex", tmp_path / "build" / "paper.pdf")


def test_each_protocol_is_its_own_holm_family_and_backprop_is_not_tested(grid):
    runs, epochs = grid
    other_runs, other_epochs = (t.assign(protocol="calibrated") for t in grid)
    bp_runs, bp_epochs = (t[t["variant"] == "uniform_0.2"].assign(protocol="backprop", variant="backprop")
                          for t in grid)
    both = [pd.concat(parts, ignore_index=True) for parts in ((runs, other_runs, bp_runs),
                                                               (epochs, other_epochs, bp_epochs))]
    alone, _, _ = stats.analyze(runs, epochs, ANALYSIS)
    table, summary, gaps = stats.analyze(*both, ANALYSIS)
    assert set(table["protocol"]) == {"lab", "calibrated"}  # no tests of the backprop reference
    for protocol in ("lab", "calibrated"):  # identical families: identical Holm p-values, not diluted by pooling
        np.testing.assert_allclose(table.loc[table["protocol"] == protocol, "p_holm"].to_numpy(),
                                   alone["p_holm"].to_numpy())
    assert set(summary["protocol"]) == {"lab", "calibrated", "backprop"}
    assert list(gaps["protocol"]) == ["calibrated", "lab"] and (gaps["n_pairs"] == 5).all()
    np.testing.assert_allclose(gaps["gap_mean"], 0.0, atol=1e-12)  # backprop rows were the reference's own runs


def test_backprop_gap_is_the_mean_paired_difference(grid):
    runs, epochs = grid
    bp = runs[runs["variant"] == "uniform_0.2"].assign(protocol="backprop", variant="backprop")
    bp = bp.assign(final_test_acc=bp["final_test_acc"] + np.array([0.01, 0.02, 0.0, 0.03, 0.04]))
    bp_epochs = epochs[epochs["variant"] == "uniform_0.2"].assign(protocol="backprop", variant="backprop")
    _, _, gaps = stats.analyze(pd.concat([runs, bp]), pd.concat([epochs, bp_epochs]), ANALYSIS)
    row = gaps.iloc[0]
    assert row["gap_mean"] == pytest.approx(-0.02) and row["n_pairs"] == 5
    assert row["gap_ci_low"] < -0.02 < row["gap_ci_high"] and row["backprop_mean"] == pytest.approx(0.86)
