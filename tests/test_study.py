"""The analysis, figure and paper stage of the workflow on config/test.yaml, checked against the per-run files."""

import json
import re
import shutil
import subprocess

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from htsep.experiments.grid import paired_effects
from htsep.experiments.grid.paper import GENERATED
from htsep.report.figures import FIGURES
from htsep.report.tex import pct, signed

from .conftest import copy_workflow, snakemake

VARIANTS = ["hts_normal", "uniform_0.2", "uniform_0.3"]
SEEDS = (0, 1, 2)  # the test config's grid seeds
GRID_VARIANTS = ("uniform_0.2", "uniform_0.3", "hts_normal")  # and its grid variants
PAPER_PAGES = 24  # of the manuscript built on config/test.yaml (one dataset, three variants, two protocols, depth)


PROTOCOLS = ["lab", "calibrated"]


def per_run_files(workdir, protocol):
    """(finals, curves) from one protocol's grid run folders (not the confirmatory or factorial runs beside them):
    final test accuracy per (variant, seed), test_acc per epoch."""
    finals, curves = {}, {}
    for summary_path in sorted(workdir.glob(f"results/runs/{protocol}/*/*/seed*/summary.json")):
        summary = json.loads(summary_path.read_text())
        key = (summary["variant"], summary["seed"])
        if key[1] not in SEEDS or key[0] not in GRID_VARIANTS:
            continue
        finals[key] = summary["final_test_acc"]
        curves[key] = pd.read_csv(summary_path.parent / "metrics.csv")["test_acc"].to_numpy()
    return finals, curves


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_summary_and_stats_equal_a_recomputation_from_the_run_files(test_study, protocol):
    summary = pd.read_csv(test_study / f"results/tables/{protocol}/summary.csv")
    table = pd.read_csv(test_study / f"results/tables/{protocol}/stats.csv", keep_default_na=True)
    assert list(table.columns) == ["protocol", "dataset", "dataset_label", "variant", "baseline", "test",
                                   "statistic", "p", "p_holm", "effect_size", "effect_name", "n_variant",
                                   "n_baseline", "note"]
    summary, table = summary[summary["protocol"] == protocol], table[table["protocol"] == protocol]
    finals, curves = per_run_files(test_study, protocol)
    assert len(finals) == 9 and sorted(summary["variant"]) == VARIANTS
    for variant in VARIANTS:
        row = summary[summary["variant"] == variant].iloc[0]
        x = np.array([finals[(variant, s)] for s in SEEDS])
        assert row["final_acc_mean"] == pytest.approx(x.mean(), rel=1e-12)
        assert row["final_acc_std"] == pytest.approx(x.std(ddof=1), rel=1e-12)
        assert row["final_acc_median"] == pytest.approx(np.median(x))
        spread = np.std(np.stack([curves[(variant, s)] for s in SEEDS]), axis=0, ddof=1)
        assert row["seed_std_mean"] == pytest.approx(spread.mean(), rel=1e-12)
        assert row["n_runs"] == 3 and row["dataset_label"] == "Synthetic"
    bf = table[(table["variant"] == "hts_normal") & (table["baseline"] == "uniform_0.2")
               & (table["test"] == "brown_forsythe")].iloc[0]
    expected = sps.levene([finals[("hts_normal", s)] for s in SEEDS],
                          [finals[("uniform_0.2", s)] for s in SEEDS], center="median")
    assert bf["p"] == pytest.approx(expected.pvalue, rel=1e-12)
    assert bf["p_holm"] >= bf["p"]
    assert set(zip(table["variant"], table["baseline"], strict=True)) == {
        ("uniform_0.3", "uniform_0.2"), ("hts_normal", "uniform_0.2"), ("hts_normal", "uniform_0.3")}
    assert len(table) == 3 * 4


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_paired_effects_equal_a_recomputation_from_the_run_files(test_study, protocol):
    table = pd.read_csv(test_study / f"results/tables/{protocol}/paired.csv")
    assert list(table.columns) == paired_effects.COLUMNS and set(table["protocol"]) == {protocol}
    finals, _ = per_run_files(test_study, protocol)
    assert set(zip(table["variant"], table["baseline"], strict=True)) == {
        ("uniform_0.3", "uniform_0.2"), ("hts_normal", "uniform_0.2"), ("hts_normal", "uniform_0.3")}
    for row in table.itertuples():
        a, b = (np.array([finals[(v, s)] for s in SEEDS]) for v in (row.variant, row.baseline))
        assert row.n_pairs == 3 and row.accuracy_difference == pytest.approx(np.mean(a - b), abs=1e-12)
        assert row.spread_sd_ratio == pytest.approx(np.std(a, ddof=1) / np.std(b, ddof=1), nan_ok=True)
    text = " ".join((test_study / "paper/generated/overview.tex").read_text().split())
    hts = table.set_index(["variant", "baseline"]).loc[("hts_normal", "uniform_0.3")]
    assert f"On Synthetic under the {protocol} protocol, heterogeneous $\\dt$ changed final test accuracy by " \
           f"{signed(100 * hts['accuracy_difference'])} points" in text


def test_every_figure_is_a_valid_image(test_study):
    for name in [stem for figure in FIGURES for _, stem in figure.outputs(PROTOCOLS)]:
        png, pdf = test_study / f"{name}.png", test_study / f"{name}.pdf"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        image = matplotlib.image.imread(png)
        assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 300 and image.shape[2] in (3, 4), name
        assert image.std() > 0.01, f"{name} is blank"
        assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 2000, name


@pytest.mark.skipif(shutil.which("pdfinfo") is None or shutil.which("pdftotext") is None, reason="needs poppler-utils")
def test_paper_is_built_from_the_generated_parts_and_figures(test_study):
    pdf = test_study / "paper/build/paper.pdf"
    assert pdf.read_bytes()[:5] == b"%PDF-"
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    assert int(re.search(r"Pages:\s+(\d+)", info).group(1)) == PAPER_PAGES
    for name in GENERATED:
        assert (test_study / f"paper/generated/{name}.tex").stat().st_size > 0, name
    latex_log = (test_study / "paper/build/paper.log").read_text()
    shown = [f"{stem}.pdf" for figure in FIGURES for _, stem in figure.outputs(PROTOCOLS)]
    for path in shown:
        graphicspath = path.replace("figures/", "figures//", 1)  # \graphicspath{{../figures/}}
        assert path in latex_log or graphicspath in latex_log, path
    assert not re.search(r"Warning: (Citation|Reference) .* undefined", latex_log)
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    for number in range(1, len(shown) + 1):
        assert f"Figure {number}:" in text
    assert "Fraction of neurons" in text and "Final test accuracy (%)" in text  # text inside the vector figures
    summary = pd.concat([pd.read_csv(test_study / f"results/tables/{p}/summary.csv") for p in [*PROTOCOLS, "backprop"]])
    for mean in summary["final_acc_mean"]:
        assert pct(mean) in text  # the accuracies quoted are the table's, backprop's too
    gaps = pd.concat([pd.read_csv(test_study / f"results/tables/{p}/gaps.csv") for p in PROTOCOLS])
    assert sorted(gaps["protocol"]) == sorted(PROTOCOLS)
    for gap in gaps["gap_mean"]:
        assert pct(gap) in text
    assert all(f"Protocol {p}" in text for p in PROTOCOLS)
    assert "9 runs of 2 epochs" in " ".join(text.split())


def test_second_call_has_nothing_to_do(test_study):
    result = snakemake(test_study, "--configfile", "config/test.yaml", "-n")
    assert "Nothing to be done" in result.stdout + result.stderr


def test_one_figure_builds_only_what_it_needs(tmp_path):
    workdir = copy_workflow(tmp_path)
    result = snakemake(workdir, "--configfile", "config/test.yaml", "-n", "figures/lab/final_accuracy.pdf")
    rules = set(re.findall(r"^\s*(?:local)?rule (\w+):", result.stdout, flags=re.MULTILINE))
    assert {"figure_final_accuracy_lab", "aggregate", "train_backprop"} <= rules  # backprop: the reference line
    assert rules <= {"prepare_data", "train", "train_backprop", "grid_shard", "aggregate",
                     "figure_final_accuracy_lab"}, rules
    trained = re.findall(r"wildcards: protocol=(\w+)", result.stdout)
    assert set(trained) == {"lab", "backprop"}  # only its own protocol's runs (and the reference), not calibrated


def test_lint_is_clean(test_study):
    result = snakemake(test_study, "--configfile", "config/test.yaml", "--lint", check=False)
    output = result.stdout + result.stderr
    lints = re.findall(r"Lints for .*|^\s+\* .*", output, flags=re.MULTILINE)
    assert result.returncode == 0 and not lints, "\n".join(lints) or output[-3000:]


def test_frontier_shard_keeps_tables_only_and_the_analysis_reads_committed_shards(test_study, tmp_path):
    """The test config's frontier: 2 levels x (2 variants and the positive control) x 3 seeds, metrics and summaries
    only; a shard committed under records.root adds up with this invocation's (seeds 0-2 recorded, 3-5 trained)."""
    shard = pd.read_csv(test_study / "results/frontier/shards/synthetic-lr-seeds0-2.runs.csv")
    assert len(shard) == 2 * 3 * 3 and set(shard["level"]) == {1.0, 30.0}
    assert set(shard["variant"]) == {"uniform_0.3", "hts_normal", "uniform_1.0"}
    assert set(shard["protocol"]) == {"calibrated"}
    assert not list((test_study / "results/frontier").rglob("*.pt"))  # no model files or checkpoints
    folders = list((test_study / "results/frontier/sweep").glob("synthetic/lr/*/*/seed*"))
    assert len(folders) == 18 and all(sorted(p.name for p in f.iterdir()) == ["metrics.csv", "summary.json"]
                                      for f in folders)
    fits = pd.read_csv(test_study / "results/frontier/fits.csv").iloc[0]
    assert (fits["n_runs"], fits["lr_df"], fits["n_seeds_min"], fits["control_n_runs"]) == (12, 2, 3, 6)
    tex = (test_study / "paper/generated/frontier.tex").read_text()
    assert "\\section{Stability frontier}" in tex and f"{int(fits['n_failed'])} of them failed" in tex
    workdir = tmp_path / "study"
    shutil.copytree(test_study, workdir, symlinks=True)
    (workdir / "results/records/2026-01-01-frontier/shards").mkdir(parents=True)
    shard.to_csv(workdir / "results/records/2026-01-01-frontier/shards/seeds0-2.runs.csv", index=False)
    (workdir / "more.yaml").write_text("frontier: {seeds: 6}\nfrontier_shard: {seeds: [3, 6]}\n"
                                       "records: {root: results/records}\n")
    out = snakemake(workdir, "results/frontier/fits.csv", "--configfile", "config/test.yaml", "more.yaml")
    assert len(re.findall(r"rule frontier_sweep_train:", out.stdout + out.stderr)) == 2  # seeds 3-5, both levels
    merged = pd.read_csv(workdir / "results/frontier/fits.csv").iloc[0]
    assert (merged["n_runs"], merged["n_seeds_min"], merged["control_n_runs"]) == (24, 6, 12)
    provenance = pd.read_csv(workdir / "results/frontier/provenance.csv").set_index("record")["n_rows"]
    assert provenance.to_dict() == {"results/records/2026-01-01-frontier/shards/seeds0-2": 18, "this invocation": 18}
