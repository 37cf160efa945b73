"""The engine on a GPU: no host-device sync in the training loop, graph replay equal to eager, numbers as on CPU.

Skipped without CUDA; run on a GPU machine with ``pytest tests/test_cuda.py`` (see benchmarks/gpu_check.sh).
"""

import contextlib

import pandas as pd
import pytest
import torch

from htsep.ep.model import EPNetwork
from htsep.training import epochs
from htsep.training import runs as train

from .test_batched import COLUMNS, grid_runs
from .test_train import data_paths  # noqa: F401  (fixture)

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

SIZES, HTS = [784, 64, 10], {"distribution": "normal", "mean": 0.3, "std": 0.05, "clip_min": 0.2, "clip_max": 0.4}
TRAINING = {"beta": 0.1, "free_steps": 20, "nudged_steps": 6, "symmetric": True, "batch_size": 16}


def stacked_net(runs=3):
    return EPNetwork.stack([EPNetwork(SIZES, HTS, seed=s, device="cuda") for s in range(runs)])


def data(n=200):
    gen = torch.Generator(device="cuda").manual_seed(0)
    x = torch.rand(n, SIZES[0], device="cuda", generator=gen)
    return x, torch.randint(0, SIZES[-1], (n,), device="cuda", generator=gen)


@contextlib.contextmanager
def sync_is_an_error():
    """Any operation that makes the host wait for the GPU raises RuntimeError inside this block."""
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_relaxation_and_ep_estimate_never_sync():
    net, (x, y) = stacked_net(), data()
    xb, yb = x[:48].view(3, 16, -1), y[:48].view(3, 16)
    with sync_is_an_error():
        net.relax(xb, 30)
        net.ep_estimate(xb, yb, 0.1, 20, 6)


def test_training_epoch_never_syncs():
    net, (x, y) = stacked_net(), data()
    optimizer = train.make_optimizer(net, {"lr": [0.1, 0.01], "momentum": 0.9, "weight_decay": 0.0})
    orders = torch.stack([torch.randperm(len(x), device="cuda") for _ in range(3)])
    estimate = epochs.batch_estimator(net, x, y, TRAINING)  # the one-off capture may synchronize
    assert isinstance(estimate, epochs.GraphedEstimate)
    with sync_is_an_error():  # 200 samples / 16: 12 replayed batches and a short eager one
        epochs.train_epoch(net, optimizer, estimate, y, orders, TRAINING, "sync check")


def test_graph_replay_equals_eager_and_sees_parameter_updates():
    net, (x, y) = stacked_net(), data()
    graphed = epochs.batch_estimator(net, x, y, TRAINING)
    assert isinstance(graphed, epochs.GraphedEstimate)  # captured, not the eager fallback
    for _ in range(3):
        idx = torch.randint(0, len(x), (3, 16), device="cuda")
        eager = net.ep_estimate(x[idx], y[idx], 0.1, 20, 6)
        replayed = graphed(idx)
        for a, b in zip(eager.grad_weights + eager.grad_biases, replayed.grad_weights + replayed.grad_biases,
                        strict=True):
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
        for w, g in zip(net.weights, eager.grad_weights, strict=True):
            w.sub_(0.5 * g)  # in place, as the optimizer does


def test_cuda_training_matches_cpu(data_paths, tmp_path):  # noqa: F811
    runs = grid_runs(epochs=2)[:4]
    for run in runs:
        run["training"]["device"] = "cuda"
    gpu = train.train_runs(runs, data_paths, [tmp_path / f"g{i}" for i in range(len(runs))])
    for run in runs:
        run["training"]["device"] = "cpu"
    train.train_runs(runs, data_paths, [tmp_path / f"c{i}" for i in range(len(runs))])
    assert {s["device"] for s in gpu} == {"cuda"}
    for i in range(len(runs)):
        a, b = (pd.read_csv(tmp_path / f"{k}{i}" / "metrics.csv") for k in ("c", "g"))
        accuracy = ["train_acc", "test_acc"]  # float rounding may flip a sample or two of 600 / 200
        pd.testing.assert_frame_equal(a[accuracy], b[accuracy], rtol=0, atol=0.011)
        rest = [c for c in COLUMNS if c not in accuracy]
        pd.testing.assert_frame_equal(a[rest], b[rest], rtol=5e-3, atol=1e-6)
