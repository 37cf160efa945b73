"""One training run: (dataset, dt variant, seed) -> metrics.csv, summary.json, model.pt.

A checkpoint is written atomically after every epoch; calling ``train_run`` again with the same run config, code and
engine resumes from it and ends with exactly the numbers of an uninterrupted run (each epoch's batch order comes from
its own seeded stream). A finished run has no checkpoint: running it again retrains. A run whose weights or loss go
non-finite stops and is recorded as diverged.
"""

from __future__ import annotations

import logging
import math
import platform
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .. import __version__
from ..config import ConfigError, dataset_label
from ..data.splits import as_tensors, load_split
from ..ep import fused
from ..ep.model import EPNetwork
from ..files import write_json, write_table, write_torch
from ..seeding import torch_rng
from .checkpoints import (
    CHECKPOINT,
    checkpoint_state,
    engine_id,
    load_checkpoints,
    optimizer_member,
    optimizer_stack,
    training_code,
)
from .epochs import batch_estimator, evaluate, finite_runs, train_epoch
from .sgd import FusedSGD

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("config key training.device: 'cuda', but this machine has no CUDA device (use auto or cpu)")
    return torch.device(name)


@contextmanager
def subnormals_flushed():
    """Flush subnormal floats to zero (FTZ/DAZ on the calling thread) while training; used as a decorator.

    Units with a zero EP gradient (dead units, often 10-20% of the hidden layer) have momentum buffers that decay
    geometrically into subnormals within an epoch, and x86 cores take a microcode assist on every subnormal
    operand: on MNIST this made epochs 3-20 about 45% slower. A subnormal SGD step (below 1.2e-38 x lr) is under
    half an ulp of any weight larger than about 1e-30, so flushing it changes no weight; only the buffers hold 0
    where they held a subnormal (checked on MNIST: benchmarks/records/2026-12-02-subnormals).
    """
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def make_optimizer(net: EPNetwork, training: dict) -> FusedSGD:
    """SGD with momentum; layer l's weights and biases share learning rate lr[l]."""
    groups = [{"params": [w, b], "lr": lr} for w, b, lr in zip(net.weights, net.biases, training["lr"], strict=True)]
    return FusedSGD(groups, training["momentum"], training["weight_decay"])


def check_batchable(runs: list[dict]) -> None:
    """Stacked runs may differ only in seed and dt variant."""
    for key in ("dataset", "model", "training"):
        if any(run[key] != runs[0][key] for run in runs):
            raise ValueError(f"runs trained together must share their {key} config")


def train_run(run: dict, data_paths: dict, out_dir: str | Path) -> dict:
    """Train one run described by ``run`` (see htsep.config.run_slice); returns its summary."""
    return train_runs([run], data_paths, [out_dir])[0]


@dataclass
class Progress:
    """A stack of runs being trained: the stacked network, its optimizer and engine, each run's metric rows, weight
    snapshots and last checkpoint, whether it diverged, the wall time so far and the next epoch."""

    net: EPNetwork
    optimizer: FusedSGD
    engine: str
    rows: list[list[dict]]
    snapshots: list[dict]
    elapsed: float
    next_epoch: int
    states: list[dict]  # each run's last checkpoint

    @property
    def diverged(self) -> list[bool]:
        return [bool(rows) and rows[-1]["diverged"] for rows in self.rows]


def start(runs: list[dict], out_dirs: list, training: dict, device) -> Progress:
    """Fresh networks from each run's seed, or the state of their checkpoints (see load_checkpoints)."""
    members = [EPNetwork(run["model"]["sizes"], run["variant"]["dt"], run["model"]["activation"], seed=run["seed"],
                         device=device) for run in runs]
    engine = engine_id(members[0], device)
    ckpts = load_checkpoints(runs, out_dirs, device, engine)
    if ckpts is None:
        net = EPNetwork.stack(members)
        return Progress(net, make_optimizer(net, training), engine, [[] for _ in runs], [{} for _ in runs], 0.0, 1,
                        [{} for _ in runs])
    log.info("resuming %d run(s) from epoch %d", len(runs), ckpts[0]["epoch"] + 1)
    net = EPNetwork.stack([EPNetwork.from_state_dict(c["network"], device=device) for c in ckpts])
    optimizer = make_optimizer(net, training)
    optimizer.load_state_dict(optimizer_stack([c["optimizer"] for c in ckpts]))
    return Progress(net, optimizer, engine, [c["metrics"] for c in ckpts], [c["snapshots"] for c in ckpts],
                    ckpts[0]["elapsed"], ckpts[0]["epoch"] + 1, ckpts)


def run_epoch(progress: Progress, runs: list[dict], data: tuple, epoch: int, training: dict, estimate) -> None:
    """Train and evaluate one epoch; append a metrics row to each run that has not diverged."""
    x_train, y_train, x_test, y_test = data
    names = [f"{r['dataset']['name']}/{r['variant']['name']}/seed{r['seed']}" for r in runs]
    label = names[0] if len(runs) == 1 else f"{len(runs)} runs of {runs[0]['dataset']['name']}"
    net, diverged = progress.net, progress.diverged
    start_time = time.perf_counter()
    orders = torch.stack([torch.randperm(len(x_train), generator=torch_rng(run["seed"], "batches", epoch))
                          for run in runs]).to(x_train.device)
    stats = train_epoch(net, progress.optimizer, estimate, y_train, orders, training, f"{label} epoch {epoch}")
    finite = finite_runs(net, stats["train_loss"])
    stats |= evaluate(net, x_test, y_test, training)
    stats = {k: v.cpu().tolist() for k, v in stats.items()}
    seconds = time.perf_counter() - start_time
    progress.elapsed += seconds
    for r, name in enumerate(names):
        if diverged[r]:
            continue
        now_diverged = not finite[r]
        values = {k: math.nan if now_diverged else v[r] for k, v in stats.items()}
        progress.rows[r].append({"epoch": epoch, **values, "seconds": seconds, "diverged": now_diverged,
                                 **{f"weight_norm_{l + 1}": float(w[r].norm()) for l, w in enumerate(net.weights)}})
        log.info("%s epoch %d: train %.4f test %.4f residual %.2e%s", name, epoch, values["train_acc"],
                 values["test_acc"], values["free_residual"], " DIVERGED" if now_diverged else "")
    progress.next_epoch = epoch + 1


def checkpoint(progress: Progress, runs: list[dict], out_dirs: list, epoch: int, training: dict) -> None:
    """Each run's checkpoint after ``epoch`` (and its weight snapshot, at a snapshot epoch)."""
    opt_state = progress.optimizer.state_dict()
    for r, (run, out_dir) in enumerate(zip(runs, out_dirs, strict=True)):
        member = progress.net.member(r)
        if epoch in training["snapshot_epochs"]:
            progress.snapshots[r][epoch] = {"weights": member.weights, "biases": member.biases}
        state = checkpoint_state(run, member, optimizer_member(opt_state, r), progress.engine, epoch,
                                 progress.rows[r], progress.elapsed, progress.snapshots[r])
        write_torch(Path(out_dir) / CHECKPOINT, state)
        progress.states[r] = state


def finish(progress: Progress, runs: list[dict], out_dirs: list, device, keep_model: bool) -> list[dict]:
    """Each run's metrics.csv, summary.json and (``keep_model``) model.pt, its last checkpoint; then the checkpoint
    goes, so that only an unfinished run resumes. Returns the summaries."""
    summaries = []
    for r, (run, out_dir) in enumerate(zip(runs, out_dirs, strict=True)):
        out_dir = Path(out_dir)
        metrics = pd.DataFrame(progress.rows[r])
        summary = summarize(run, metrics, progress.net.member(r), device, progress.elapsed) | {
            "runs_trained_together": len(runs)}
        write_table(out_dir / "metrics.csv", metrics)
        write_json(out_dir / "summary.json", summary)
        if keep_model:
            write_torch(out_dir / "model.pt", progress.states[r])
        (out_dir / CHECKPOINT).unlink(missing_ok=True)
        summaries.append(summary)
    return summaries


@subnormals_flushed()
def train_runs(runs: list[dict], data_paths: dict, out_dirs: list, keep_model: bool = True) -> list[dict]:
    """Train R runs that share data and hyperparameters as one stacked network; one output folder each.

    Every run gets exactly the initial weights, dt and batch order its own seed gives; a run that diverges is
    recorded and no longer reported, while the others go on. A finished run keeps metrics.csv, summary.json and (with
    ``keep_model``) model.pt; its checkpoint, kept for resuming while it trains, is deleted.
    """
    check_batchable(runs)
    training = runs[0]["training"]
    torch.set_num_threads(training.get("threads", 1))
    device = resolve_device(training["device"])
    normalize = runs[0]["dataset"].get("normalize")
    data = tuple(t.to(device) for split in ("train", "test")
                 for t in as_tensors(load_split(data_paths[split]), normalize))
    progress = start(runs, out_dirs, training, device)
    estimate = batch_estimator(progress.net, data[0], data[1], training)
    for epoch in range(progress.next_epoch, training["epochs"] + 1):
        if all(progress.diverged):
            break
        run_epoch(progress, runs, data, epoch, training, estimate)
        checkpoint(progress, runs, out_dirs, epoch, training)
    return finish(progress, runs, out_dirs, device, keep_model)


def train_job(runs: list[dict], data_paths: dict, out_dirs: list, stack: bool) -> list[dict]:
    """A train job's runs: as one stacked network (``stack``: train_runs, the GPU's way) or one after another, each
    alone (the CPU's fastest, and the numbers of one job per run, without a process start per run)."""
    if stack:
        return train_runs(runs, data_paths, out_dirs)
    return [train_run(run, data_paths, out_dir) for run, out_dir in zip(runs, out_dirs, strict=True)]


def run_summary(run: dict, metrics: pd.DataFrame, device, elapsed: float) -> dict:
    """What every run's summary.json holds (EP and backprop alike): identity, outcome, wall time, versions.
    ``best_test_acc`` is chosen on the test set: descriptive only (post hoc), never used for a choice."""
    finite = metrics[~metrics["diverged"]]
    diverged = bool(metrics["diverged"].any())
    best = finite.loc[finite["test_acc"].idxmax()] if len(finite) else None
    return {
        "protocol": run.get("protocol"),
        "dataset": run["dataset"]["name"],
        "dataset_label": dataset_label(run["dataset"]["name"], run["dataset"]["split"]),
        "split": run["dataset"]["split"],
        "seed": run["seed"],
        "final_test_acc": math.nan if diverged else float(metrics["test_acc"].iloc[-1]),
        "final_train_acc": math.nan if diverged else float(metrics["train_acc"].iloc[-1]),
        "best_test_acc": math.nan if best is None else float(best["test_acc"]),
        "best_epoch": None if best is None else int(best["epoch"]),
        "diverged": diverged,
        "diverged_epoch": int(metrics.loc[metrics["diverged"], "epoch"].iloc[0]) if diverged else None,
        "epochs_completed": int(len(metrics)),
        "wall_seconds": elapsed,
        "device": str(device),
        "config": run,
        "versions": {"htsep": __version__, "torch": torch.__version__, "numpy": np.__version__,
                     "python": sys.version.split()[0], "platform": platform.platform()},
    }


def dt_stats(net: EPNetwork) -> list[dict]:
    return [{"layer": l + 1, "mean": float(d.mean()), "std": float(d.std(unbiased=False)),
             "min": float(d.min()), "max": float(d.max())} for l, d in enumerate(net.dt)]


def summarize(run: dict, metrics: pd.DataFrame, net: EPNetwork, device, elapsed: float) -> dict:
    """run_summary plus what an EP run adds: its variant, relaxation engine and kernel build, code and dt."""
    return run_summary(run, metrics, device, elapsed) | {
        "variant": run["variant"]["name"],
        "relaxation_engine": fused.engine(net),
        "relaxation_kernel": fused.kernel_id() if fused.engine(net) == "fused-cpu" else None,
        "code_fingerprint": training_code(),
        "dt_stats": dt_stats(net),
    }
