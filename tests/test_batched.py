"""Seed-batched training: R runs in one stacked network equal R separate runs, and stay independent."""

import math

import pandas as pd
import pytest
import torch

from htsep.config import run_slice
from htsep.study import load_config
from htsep.training import epochs
from htsep.training import runs as train

from .test_train import CONFIGS, data_paths, kill_during_epoch  # noqa: F401  (data_paths: fixture)

COLUMNS = ["train_acc", "train_loss", "test_acc", "test_loss", "free_residual", "weight_norm_1", "weight_norm_2"]


def grid_runs(epochs=2):
    config = load_config(CONFIGS)
    runs = [run_slice(config, "synthetic", v, s) for v in ("uniform_0.2", "hts_normal") for s in (0, 1, 2)]
    for run in runs:
        run["training"]["epochs"] = epochs
    return runs


def test_batched_members_equal_separate_runs(data_paths, tmp_path):  # noqa: F811
    """Equal within rounding: the stack's batched products (MKL) round differently from one run's, and those
    differences compound over SGD steps (measured on AMD EPYC: 2e-6 relative after one epoch, 1.3e-4 after two);
    a prediction may flip, so accuracies agree to one sample."""
    runs = grid_runs()
    n_train, n_test = 600, 200
    batched = train.train_runs(runs, data_paths, [tmp_path / f"b{i}" for i in range(len(runs))])
    for i, run in enumerate(runs):
        alone = train.train_run(run, data_paths, tmp_path / f"s{i}")
        a, b = (pd.read_csv(tmp_path / f"{k}{i}" / "metrics.csv") for k in ("s", "b"))
        pd.testing.assert_frame_equal(a[COLUMNS].head(1), b[COLUMNS].head(1), rtol=2e-5, atol=1e-6)
        pd.testing.assert_frame_equal(a[COLUMNS], b[COLUMNS], rtol=1e-3, atol=1.01 / n_test)
        assert ((a["train_acc"] - b["train_acc"]).abs() <= 1.01 / n_train).all()
        assert ((a["test_acc"] - b["test_acc"]).abs() <= 1.01 / n_test).all()
        assert alone["dt_stats"] == batched[i]["dt_stats"]
        model_a, model_b = (torch.load(tmp_path / f"{k}{i}" / "model.pt", weights_only=False) for k in ("s", "b"))
        assert torch.equal(model_a["network"]["dt"][0], model_b["network"]["dt"][0])
        assert model_b["network"]["weights"][0].shape == (32, 784)  # one run per file, not the stack


def test_one_diverging_member_does_not_stop_the_others(data_paths, tmp_path, monkeypatch):  # noqa: F811
    runs = grid_runs(epochs=3)[:3]
    real_epoch = epochs.train_epoch

    def poison_member_1(net, *args):
        stats = real_epoch(net, *args)
        net.weights[0][1, 0, 0] = math.inf
        return stats

    monkeypatch.setattr(train, "train_epoch", poison_member_1)
    summaries = train.train_runs(runs, data_paths, [tmp_path / f"r{i}" for i in range(3)])
    assert [s["diverged"] for s in summaries] == [False, True, False]
    assert summaries[1]["diverged_epoch"] == 1 and summaries[1]["epochs_completed"] == 1
    assert [s["epochs_completed"] for s in summaries] == [3, 1, 3]
    assert all(s["final_test_acc"] > 0.5 for s in (summaries[0], summaries[2]))


def test_batched_resume_after_kill(data_paths, tmp_path, monkeypatch):  # noqa: F811
    runs = grid_runs(epochs=2)[:2]
    train.train_runs(runs, data_paths, [tmp_path / f"w{i}" for i in range(2)])
    real_evaluate = kill_during_epoch(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        train.train_runs(runs, data_paths, [tmp_path / f"k{i}" for i in range(2)])
    monkeypatch.setattr(train, "evaluate", real_evaluate)
    train.train_runs(runs, data_paths, [tmp_path / f"k{i}" for i in range(2)])
    for i in range(2):
        whole, resumed = (pd.read_csv(tmp_path / f"{k}{i}" / "metrics.csv").drop(columns="seconds") for k in "wk")
        pd.testing.assert_frame_equal(whole, resumed)
