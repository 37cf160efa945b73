"""The mechanism sweeps on tiny synthetic data: plans from the config (htsep.experiments.mechanism.plan), stacked
training on a data subset (htsep.training.sweeps, htsep.data.subsets), their tables
(htsep.experiments.mechanism.landscape) and figures (htsep.report.figures)."""

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from htsep.config import ConfigError
from htsep.data.prepare import prepare_dataset
from htsep.data.splits import load_split
from htsep.data.subsets import first_per_class, subset_split
from htsep.experiments.mechanism.landscape import landscape_tables, write_shard
from htsep.experiments.mechanism.plan import declared_landscape, landscape_plan, spectral_runs
from htsep.records import declared_runs
from htsep.report.figures import BY_NAME, figure_params, make_figure
from htsep.study import load_config
from htsep.training.sweeps import train_sweep

from .conftest import REPO


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory):
    """config.yaml + test.yaml, with mechanism sweeps cut to a few runs on 15 images per class."""
    config = load_config([REPO / "config/config.yaml", REPO / "config/test.yaml"])
    config["training"] |= {"probe_size": 20}
    small = {"train_subset": 15, "test_subset": 60, "epochs": 2, "seeds": [0, 1]}
    config["mechanism"]["landscape"] |= {**small, "means": [0.2, 0.6], "stds": [0, 0.1]}
    root = tmp_path_factory.mktemp("data")
    paths = prepare_dataset("synthetic", root, synthetic={"n_train": 300, "n_test": 100, "seed": 0})
    return config, {k: str(v) for k, v in paths.items()}


def draw(name, inputs, outputs, config):
    """Figure ``name`` from the driver's tables, as its workflow rule draws it."""
    make_figure(name, inputs, outputs, figure_params(BY_NAME[name], config))
    assert all(Path(outputs[ext]).stat().st_size > 1000 for ext in ("pdf", "png"))


def run_plan(plan, workdir, data):
    for jobs in plan.values():
        train_sweep([run for _, run in jobs], [str(workdir / folder) for folder, _ in jobs], data)
    return [workdir / folder / "summary.json" for jobs in plan.values() for folder, _ in jobs]


def test_landscape_driver(tiny_config, tmp_path):
    config, data = tiny_config
    plan = landscape_plan(config)
    assert list(plan) == ["0.2", "0.6"] and all(len(jobs) == 4 for jobs in plan.values())
    summaries = run_plan(plan, tmp_path, data)
    outputs = {k: str(tmp_path / f"out/{k}.{ext}") for k, ext in (("runs", "parquet"), ("runs_csv", "csv"),
                                                                  ("table", "csv"), ("pdf", "pdf"), ("png", "png"),
                                                                  ("provenance", "csv"), ("shard", "csv"))}
    params = {"chance_acc": 0.2, "analysis": {"collapse_drop": 0.05, "alpha": 0.05},
              "declared": declared_runs(declared_landscape(config))}
    write_shard(summaries, outputs["shard"], params)
    landscape_tables([], [outputs["shard"]], outputs, params)
    draw("landscape", {"summary": outputs["table"]}, outputs, config)
    runs, table = pd.read_parquet(outputs["runs"]), pd.read_csv(outputs["table"])
    assert len(runs) == 8 and set(zip(runs["mean"], runs["std"], strict=True)) == {(0.2, 0), (0.2, 0.1), (0.6, 0),
                                                                                  (0.6, 0.1)}
    assert (runs.loc[runs["std"] == 0, "dt_std"] < 1e-6).all() and (runs.loc[runs["std"] > 0, "dt_std"] > 0.05).all()
    assert runs["dt_mean"].to_numpy() == pytest.approx(runs["mean"].to_numpy(), abs=0.04)
    assert len(table) == 4 and (table["n_runs"] == 2).all()
    assert (table["break_cp_low"] <= table["break_rate"]).all()
    assert (table["break_rate"] <= table["break_cp_high"]).all()
    summary = json.loads(summaries[0].read_text())
    assert summary["config"]["training"]["epochs"] == 2 and summary["config"]["dataset"]["train_subset"] == 15
    assert len(pd.read_csv(summaries[0].parent / "metrics.csv")) == 2


def test_plans_follow_the_config(tiny_config):
    config, _ = tiny_config
    config = {**config, "mechanism": {**config["mechanism"], "spectral": {
        **config["mechanism"]["spectral"], "variants": ["uniform_0.2", "not_in_grid"], "seeds": [1]}}}
    assert spectral_runs(config) == [("synthetic", "uniform_0.2", 1)]  # unknown variants are left out
    config["mechanism"]["spectral"]["variants"] = ["not_in_grid"]
    with pytest.raises(ConfigError, match="mechanism.spectral.variants"):
        spectral_runs(config)


def test_subsets_keep_the_first_images(tiny_config):
    _, data = tiny_config
    split = load_split(data["train"])
    labels = split["labels"]
    positions = torch.from_numpy(first_per_class(labels, 15))
    assert torch.equal(positions, positions.sort().values)
    for c in range(10):  # the first 15 of each class
        assert torch.equal(positions[labels[positions] == c], torch.nonzero(labels == c).flatten()[:15])
    with pytest.raises(ValueError, match="subset=1000 exceeds"):
        first_per_class(labels, 1000)
    part = subset_split(split, per_class=15)
    assert torch.equal(part["index"], split["index"][positions]) and torch.equal(part["images"],
                                                                                split["images"][positions])
    assert part["provenance"]["mechanism_subset"] == {"per_class": 15, "first": None} and part["provenance"]["n"] == 150
    first = subset_split(split, first=60)
    assert torch.equal(first["images"], split["images"][:60]) and torch.equal(first["labels"], labels[:60])
