"""The Snakemake pipeline on config/test.yaml: tables right, caching right, bad config caught before any job."""

import json
import re
import shutil
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pytest
import torch
import yaml

from .conftest import REPO, copy_workflow, snakemake, study_train_jobs

GRID = {"protocol": ["calibrated", "lab"], "dataset": ["synthetic"],
        "variant": ["hts_normal", "uniform_0.2", "uniform_0.3"], "seed": [0, 1, 2]}


def tables(study, name: str, protocols=("calibrated", "lab", "backprop")) -> pd.DataFrame:
    """The grid's per-protocol tables ``name`` (runs, epochs, dt_values) of a study, one after the other."""
    return pd.concat([pd.read_parquet(study / f"results/tables/{p}/{name}.parquet") for p in protocols],
                     ignore_index=True)


def test_runs_table_equals_the_run_files(test_study):
    runs = tables(test_study, "runs", GRID["protocol"])
    assert len(runs) == 18 and sorted(runs["variant"].unique()) == GRID["variant"]
    assert sorted(runs["protocol"].unique()) == GRID["protocol"]
    backprop = pd.read_parquet(test_study / "results/tables/backprop/runs.parquet")
    assert len(backprop) == 3 and set(backprop["variant"]) == {"backprop"} and backprop["final_test_acc"].gt(0.3).all()
    for protocol in GRID["protocol"]:
        pd.testing.assert_frame_equal(
            pd.read_parquet(test_study / f"results/tables/{protocol}/runs.parquet"),
            pd.read_csv(test_study / f"results/tables/{protocol}/runs.csv",
                        dtype={"best_epoch": "Int64", "diverged_epoch": "Int64"}))
    for row in runs.itertuples():
        folder = test_study / f"results/runs/{row.protocol}/{row.dataset}/{row.variant}/seed{row.seed}"
        summary = json.loads((folder / "summary.json").read_text())
        metrics = pd.read_csv(folder / "metrics.csv")
        assert row.final_test_acc == summary["final_test_acc"] == metrics["test_acc"].iloc[-1]
        assert row.best_test_acc == metrics["test_acc"].max()
        assert row.dataset_label == "Synthetic" and row.epochs_completed == 2
    assert runs["final_test_acc"].between(0.3, 1).all()  # the short test study still learns


def test_epoch_and_dt_tables(test_study):
    epochs = tables(test_study, "epochs")
    assert len(epochs) == (18 + 3) * 2 and set(epochs["epoch"]) == {1, 2}
    ep = epochs[epochs["protocol"] != "backprop"]
    assert ep["out_dead_analytic_frac"].between(0, 1).all() and ep["dead_frac_l1"].between(0, 1).all()
    dt = tables(test_study, "dt_values", GRID["protocol"])
    assert len(dt) == 18 * (32 + 10)
    for variant, value in (("uniform_0.2", 0.2), ("uniform_0.3", 0.3)):
        assert dt.loc[dt["variant"] == variant, "dt"].to_numpy() == pytest.approx(value)
    hts = dt[(dt["protocol"] == "lab") & (dt["variant"] == "hts_normal") & (dt["seed"] == 1)]
    model = torch.load(test_study / "results/runs/lab/synthetic/hts_normal/seed1/model.pt", weights_only=True)
    saved = torch.cat(model["network"]["dt"]).double().numpy()
    assert hts.sort_values(["layer", "neuron"])["dt"].to_numpy() == pytest.approx(saved)
    assert hts["dt"].between(0.2 - 1e-7, 0.4 + 1e-7).all() and hts["dt"].std() > 0.02


def test_second_call_has_nothing_to_do(test_study):
    result = snakemake(test_study, "--configfile", "config/test.yaml", "-n")
    assert "Nothing to be done" in result.stdout + result.stderr


def planned_jobs(output: str) -> dict[str, list[str]]:
    """rule name -> wildcard lines of the jobs a dry run would execute."""
    jobs: dict[str, list[str]] = {}
    for block in re.split(r"\n(?=\s*(?:local)?rule \w+:)", output):
        match = re.match(r"\s*(?:local)?rule (\w+):", block)
        if match:
            wildcards = re.search(r"wildcards: (.*)", block)
            jobs.setdefault(match.group(1), []).append(wildcards.group(1) if wildcards else "")
    return jobs


def test_changing_one_variant_reruns_only_its_runs(test_study):
    config = yaml.safe_load((test_study / "config/test.yaml").read_text())
    for variant in config["variants"]:
        if variant["name"] == "hts_normal":  # a wider spread at the same mean, clipped by the factorial's rule
            variant["dt"] |= {"std": 0.06, "clip_min": 0.18, "clip_max": 0.42}
    (test_study / "changed.yaml").write_text(yaml.safe_dump({"variants": config["variants"]}))
    result = snakemake(test_study, "--configfile", "config/test.yaml", "changed.yaml", "-n")
    jobs = planned_jobs(result.stdout)
    # both protocols: the grid's and the confirmatory experiment's seeds (the factorial's hts_normal are the grid's)
    assert len(jobs["train"]) == 12 and all("variant=hts_normal" in w for w in jobs["train"])
    assert "train_backprop" not in jobs
    assert "prepare_data" not in jobs and "aggregate" in jobs


@pytest.mark.parametrize("override,key", [
    ("training: {epohcs: 2}", "epohcs"),
    ("variants: [{name: neg, dt: {distribution: constant, value: -0.3}}]", "value"),
])
def test_bad_config_fails_before_any_job(test_study, override, key):
    (test_study / "bad.yaml").write_text(override)
    before = sorted(p for p in (test_study / "results").rglob("*"))
    result = snakemake(test_study, "--configfile", "config/test.yaml", "bad.yaml", check=False)
    assert result.returncode != 0 and key in result.stdout + result.stderr
    assert sorted(p for p in (test_study / "results").rglob("*")) == before


def test_batched_execution_gives_the_same_tables(test_study, tmp_path):
    workdir = copy_workflow(tmp_path)
    (workdir / "batch.yaml").write_text("execution: {batch_runs: true, runs_per_job: 4}\n")
    result = snakemake(workdir, "results/tables/calibrated/runs.parquet", "--configfile", "config/test.yaml",
                       "batch.yaml")
    assert "train_batch_calibrated_synthetic_2" in result.stdout + result.stderr  # 9 runs in 3 stacked jobs
    batched = pd.read_parquet(workdir / "results/tables/calibrated/runs.parquet")
    single = pd.read_parquet(test_study / "results/tables/calibrated/runs.parquet")
    keys = ["protocol", "dataset", "variant", "seed", "dt_mean_l1", "dt_std_l1"]
    pd.testing.assert_frame_equal(batched[keys], single[keys], rtol=1e-6)
    for column in ("final_test_acc", "best_test_acc"):  # within rounding: a prediction may flip (test_batched)
        assert ((batched[column] - single[column]).abs() <= 1.01 / 200).all(), column
        assert abs(batched[column].mean() - single[column].mean()) < 1e-3, column


def test_unstacked_batches_give_exactly_the_numbers_of_single_run_jobs(test_study, tmp_path):
    workdir = copy_workflow(tmp_path)
    (workdir / "batch.yaml").write_text("execution: {batch_runs: true, runs_per_job: 4, stack_runs: false}\n")
    result = snakemake(workdir, "results/tables/calibrated/runs.parquet", "--configfile", "config/test.yaml",
                       "batch.yaml")
    assert "train_batch_calibrated_synthetic_2" in result.stdout + result.stderr  # 9 runs in 3 jobs
    batched, single = (pd.read_parquet(d / "results/tables/calibrated/runs.parquet") for d in (workdir, test_study))
    timing = [c for c in single.columns if "seconds" in c]
    assert len(single) == 9 and "final_test_acc" in single
    pd.testing.assert_frame_equal(batched.drop(columns=timing), single.drop(columns=timing), check_exact=True)


def test_code_edits_rerun_exactly_the_rules_that_execute_the_code(test_study, tmp_path):
    """Library code is an input: an edit in the grid's stats.py reruns the statistics and what reads them, not
    training; one in ep/model.py reruns training; a comment-only edit reruns nothing."""
    workdir = tmp_path / "study"
    shutil.copytree(test_study, workdir, symlinks=True)
    shutil.copytree(REPO / "src" / "htsep", workdir / "src" / "htsep", ignore=shutil.ignore_patterns("__pycache__"))
    library = workdir / "src" / "htsep"  # the Snakefile imports htsep from the workflow's own src/ first

    def planned(edit_file: str, line: str) -> dict[str, list[str]]:
        original = (library / edit_file).read_text()
        (library / edit_file).write_text(original + line)
        try:
            return planned_jobs(snakemake(workdir, "--configfile", "config/test.yaml", "-n").stdout)
        finally:
            (library / edit_file).write_text(original)

    assert planned("experiments/grid/stats.py", "\n# a comment changes no code\n") == {}
    stats_edit = planned("experiments/grid/stats.py", "\nEDITED = True\n")
    assert "stats" in stats_edit and "paper" in stats_edit and "train" not in stats_edit
    assert "aggregate" not in stats_edit and "prepare_data" not in stats_edit
    model_edit = planned("ep/model.py", "\nEDITED = True\n")
    assert len(model_edit["train"]) == study_train_jobs() and "prepare_data" not in model_edit


SHIPPED = [["config/config.yaml"], ["config/config.yaml", "config/offline.yaml"],
           ["config/config.yaml", "config/offline.yaml", "config/reduced.yaml"],
           ["config/config.yaml", "config/offline.yaml", "config/gpu.yaml"], ["config/test.yaml"],
           ["config/config.yaml", "config/offline.yaml", "config/records.yaml"]]


def test_every_shipped_config_resolves_its_whole_dag(tmp_path):
    """Each documented combination of the files in config/ plans its whole study (a dry run), so a shipped overlay
    cannot contradict the defaults unnoticed."""
    shipped = {str(p.relative_to(REPO)) for p in (REPO / "config").glob("*.yaml")} - {"config/schema.yaml"}
    assert {name for combination in SHIPPED for name in combination} == shipped
    workdir = copy_workflow(tmp_path)

    def plan(combination):
        return snakemake(workdir, "-n", "--configfile", *combination).stdout

    with ThreadPoolExecutor(2) as pool:
        for combination, out in zip(SHIPPED, pool.map(plan, SHIPPED), strict=True):
            jobs = planned_jobs(out)
            trains = any(name.startswith(("train", "prepare_data")) for name in jobs)
            assert "paper" in jobs and trains != ("config/records.yaml" in combination), combination
