"""One training run: (dataset, dt variant, seed) -> metrics.csv, summary.json, model.pt.

A checkpoint is written atomically after every epoch; calling ``train_run`` again with the same run config
resumes from it and ends with exactly the numbers of an uninterrupted run (each epoch's batch order comes from
its own seeded stream). A run whose weights or loss go non-finite stops and is recorded as diverged.
"""

from __future__ import annotations

import logging
import math
import platform
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from .. import __version__
from ..config import dataset_label
from ..data.splits import as_tensors, load_split
from ..ep import fused
from ..ep.dynamics import dead_units, relaxation_diagnostics
from ..ep.model import EPNetwork, mse_loss, one_hot
from ..files import write_json, write_table, write_torch
from ..fingerprint import code_fingerprint
from ..seeding import torch_rng

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"


def training_code() -> str:
    """Fingerprint of the code a training run executes (this module and all it imports, the kernel source too):
    part of a run's identity in its checkpoint and summary, so an engine edit retrains instead of resuming."""
    return code_fingerprint("training.runs")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("training.device is 'cuda' but torch.cuda.is_available() is False")
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


def make_optimizer(net: EPNetwork, training: dict) -> torch.optim.SGD:
    """SGD with momentum; layer l's weights and biases share learning rate lr[l]."""
    groups = [{"params": [w, b], "lr": lr} for w, b, lr in zip(net.weights, net.biases, training["lr"], strict=True)]
    return torch.optim.SGD(groups, lr=training["lr"][0], momentum=training["momentum"],
                           weight_decay=training["weight_decay"], fused=True)  # one kernel per tensor


def leading(net: EPNetwork) -> int:
    """Number of stacked runs R (parameters are [R, out, in])."""
    return net.weights[0].shape[0]


@torch.no_grad()
def evaluate(net: EPNetwork, x, y, training: dict) -> dict[str, torch.Tensor]:
    """Per-run test metrics at the end of the free phase, its residual mean |s_T1 - s_{T1-1}|, and the
    relaxation diagnostics and dead units (htsep.ep.dynamics) of the first ``probe_size`` test samples.

    Test samples are relaxed ``eval_batch_size`` at a time over all R stacked runs (eval_batch_size // R per
    run), so the states stay in cache however many runs are stacked.
    """
    runs, n_classes = leading(net), net.sizes[-1]
    step = max(1, training["eval_batch_size"] // runs)
    loss, residual = (torch.zeros(runs, dtype=torch.float64, device=x.device) for _ in range(2))
    predicted = []
    for start in range(0, len(x), step):
        xb, yb = x[start:start + step].expand(runs, -1, -1), y[start:start + step]
        before = net.relax(xb, training["free_steps"] - 1)
        states = net.relax(xb, 1, init=before)
        out = states[-1]
        residual += sum((s - p).abs().sum((-2, -1)) for s, p in zip(states, before, strict=True))
        loss += mse_loss(out, one_hot(yb, n_classes, out.dtype)).sum(-1)
        predicted.append(out.argmax(-1))
    predicted = torch.cat(predicted, -1)
    probe, probe_labels = x[:training["probe_size"]], y[:training["probe_size"]]
    diagnostics = {}
    for start in range(0, len(probe), step):  # relaxation diagnostics are means over probe samples
        chunk = probe[start:start + step]
        part = relaxation_diagnostics(net, chunk.expand(runs, -1, -1), training["free_steps"],
                                      training["residual_tol"])
        for key, value in part.items():
            diagnostics[key] = diagnostics.get(key, 0) + value * (len(chunk) / len(probe))
    diagnostics |= dead_units(net, probe.expand(runs, -1, -1), probe_labels, training)  # over the whole probe
    counts = torch.nn.functional.one_hot(predicted, n_classes).sum(-2).double()
    share = counts / counts.sum(-1, keepdim=True)
    return {
        "test_acc": (predicted == y).double().mean(-1),
        "test_loss": loss / len(x),
        "free_residual": residual / (len(x) * sum(net.sizes[1:])),
        "pred_entropy": -torch.where(share > 0, share * share.log(), 0.0).sum(-1),
        "classes_never_predicted": (counts == 0).sum(-1),
        **diagnostics,
    }


def batch_estimator(net: EPNetwork, x, y, training: dict):
    """``estimate(idx)``: the EP estimate on batches ``idx`` [R, batch] of (x, y), every run its own batch.

    On CUDA the estimate of a full-size batch (about 500 small kernels) is replayed from a CUDA graph (see
    GraphedEstimate); elsewhere it runs eagerly.
    """
    targets = one_hot(y, net.sizes[-1], x.dtype)  # one-hot once, then gathered per batch like the images

    def estimate(idx):
        rows = idx.flatten()  # index_select: a plain row copy, several times faster than x[idx] on the CPU
        xb, yb = (t.index_select(0, rows).view(*idx.shape, -1) for t in (x, targets))
        return net.ep_estimate(xb, yb, training["beta"], training["free_steps"], training["nudged_steps"],
                               training["symmetric"])

    if x.device.type != "cuda":
        return estimate
    try:
        return GraphedEstimate(estimate, torch.Size([leading(net), training["batch_size"]]), x.device)
    except RuntimeError as err:  # e.g. an op that cannot be captured: same numbers, only slower
        log.warning("CUDA graph capture failed (%s); running eagerly", err)
        return estimate


class GraphedEstimate:
    """``estimate`` captured once as a CUDA graph for index batches of one shape and replayed with one launch.

    Parameters are read in place, so optimizer steps between replays are seen; the returned tensors are
    overwritten by the next call. Batches of another shape (a short last batch) run eagerly.
    """

    def __init__(self, estimate, shape: torch.Size, device: torch.device):
        self.eager = estimate
        self.idx = torch.zeros(shape, dtype=torch.long, device=device)
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):  # warm-up outside the capture (cuBLAS workspaces, allocator pools)
            for _ in range(2):
                estimate(self.idx)
        torch.cuda.current_stream(device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.output = estimate(self.idx)

    def __call__(self, idx):
        if idx.shape != self.idx.shape:
            return self.eager(idx)
        self.idx.copy_(idx)
        self.graph.replay()
        return self.output


def train_epoch(net, optimizer, estimate, y, orders, training: dict, progress: str) -> dict[str, torch.Tensor]:
    """One pass over the training set (labels ``y``), run r in order ``orders[r]``, EP estimates from
    ``estimate`` (see batch_estimator); per-run free-phase accuracy and loss, scored once at the end of the
    pass from the free-phase outputs each batch had."""
    runs, n_classes = leading(net), net.sizes[-1]
    outputs = torch.empty(runs, len(y), n_classes, device=y.device)
    for start in tqdm(range(0, len(y), training["batch_size"]), desc=progress, leave=False, disable=None):
        batch = slice(start, start + training["batch_size"])
        est = estimate(orders[:, batch])  # every run sees its own seed's batches
        outputs[:, batch] = est.free_states[-1]
        for param, grad in zip(net.parameters, est.grad_weights + est.grad_biases, strict=True):
            param.grad = grad
        optimizer.step()
    labels = y[orders]
    loss = mse_loss(outputs, one_hot(labels, n_classes, outputs.dtype)).double().sum(-1)
    return {"train_acc": (outputs.argmax(-1) == labels).sum(-1).double() / len(y), "train_loss": loss / len(y)}


def finite_runs(net: EPNetwork, train_loss: torch.Tensor) -> torch.Tensor:
    """Per run: are all its parameters and its training loss finite?"""
    ok = torch.isfinite(train_loss)
    for p in net.parameters:
        ok &= torch.isfinite(p).flatten(1).all(1)
    return ok.cpu()


def dt_stats(net: EPNetwork) -> list[dict]:
    return [{"layer": l + 1, "mean": float(d.mean()), "std": float(d.std(unbiased=False)),
             "min": float(d.min()), "max": float(d.max())} for l, d in enumerate(net.dt)]


def optimizer_member(state: dict, r: int) -> dict:
    return {"param_groups": state["param_groups"],
            "state": {i: {k: v[r].clone() for k, v in s.items()} for i, s in state["state"].items()}}


def optimizer_stack(states: list[dict]) -> dict:
    return {"param_groups": states[0]["param_groups"],
            "state": {i: {k: torch.stack([st["state"][i][k] for st in states]) for k in s}
                      for i, s in states[0]["state"].items()}}


def check_batchable(runs: list[dict]) -> None:
    """Stacked runs may differ only in seed and dt variant."""
    for key in ("dataset", "model", "training"):
        if any(run[key] != runs[0][key] for run in runs):
            raise ValueError(f"runs trained together must share their {key} config")


def load_checkpoints(runs, out_dirs, device):
    """Resume state of all runs if each has a checkpoint of its own config at one common epoch, else None."""
    paths = [Path(d) / CHECKPOINT for d in out_dirs]
    if not all(p.exists() for p in paths):
        return None
    ckpts = [torch.load(p, map_location=device, weights_only=False) for p in paths]
    if any(c["run"] != run for c, run in zip(ckpts, runs, strict=True)) or len({c["epoch"] for c in ckpts}) > 1:
        log.warning("checkpoints in %s do not match this config; starting afresh", out_dirs)
        return None
    if any(c.get("code") != training_code() for c in ckpts):
        log.warning("checkpoints in %s were written by other training code; starting afresh", out_dirs)
        return None
    return ckpts


def train_run(run: dict, data_paths: dict, out_dir: str | Path) -> dict:
    """Train one run described by ``run`` (see htsep.config.run_slice); returns its summary."""
    return train_runs([run], data_paths, [out_dir])[0]


@subnormals_flushed()
def train_runs(runs: list[dict], data_paths: dict, out_dirs: list, keep_model: bool = True) -> list[dict]:
    """Train R runs that share data and hyperparameters as one stacked network; one output folder each.

    Every run gets exactly the initial weights, dt and batch order its own seed gives; a run that diverges is
    recorded and no longer reported, while the others go on. Without ``keep_model`` a finished run keeps only its
    metrics.csv and summary.json (its checkpoint, kept for resuming while it trains, is deleted).
    """
    check_batchable(runs)
    training = runs[0]["training"]
    torch.set_num_threads(training.get("threads", 1))
    device = resolve_device(training["device"])
    train_split, test_split = load_split(data_paths["train"]), load_split(data_paths["test"])
    normalize = runs[0]["dataset"].get("normalize")
    x_train, y_train = (t.to(device) for t in as_tensors(train_split, normalize))
    x_test, y_test = (t.to(device) for t in as_tensors(test_split, normalize))

    ckpts = load_checkpoints(runs, out_dirs, device)
    if ckpts is None:
        members = [EPNetwork(run["model"]["sizes"], run["variant"]["dt"], run["model"]["activation"], seed=run["seed"],
                             device=device) for run in runs]
        rows, first_epoch, elapsed = [[] for _ in runs], 1, 0.0
        snapshots = [{} for _ in runs]
    else:
        members = [EPNetwork.from_state_dict(c["network"], device=device) for c in ckpts]
        rows, first_epoch, elapsed = [c["metrics"] for c in ckpts], ckpts[0]["epoch"] + 1, ckpts[0]["elapsed"]
        snapshots = [c["snapshots"] for c in ckpts]
        log.info("resuming %d run(s) from epoch %d", len(runs), first_epoch)
    net = EPNetwork.stack(members)
    optimizer = make_optimizer(net, training)
    if ckpts is not None:
        optimizer.load_state_dict(optimizer_stack([c["optimizer"] for c in ckpts]))

    names = [f"{r['dataset']['name']}/{r['variant']['name']}/seed{r['seed']}" for r in runs]
    progress = names[0] if len(runs) == 1 else f"{len(runs)} runs of {runs[0]['dataset']['name']}"
    diverged = [bool(r) and r[-1]["diverged"] for r in rows]
    estimate = batch_estimator(net, x_train, y_train, training)
    for epoch in range(first_epoch, training["epochs"] + 1):
        if all(diverged):
            break
        start = time.perf_counter()
        orders = torch.stack([torch.randperm(len(x_train), generator=torch_rng(run["seed"], "batches", epoch))
                              for run in runs]).to(device)
        stats = train_epoch(net, optimizer, estimate, y_train, orders, training, f"{progress} epoch {epoch}")
        finite = finite_runs(net, stats["train_loss"])
        stats |= evaluate(net, x_test, y_test, training)
        stats = {k: v.cpu().tolist() for k, v in stats.items()}
        seconds = time.perf_counter() - start
        elapsed += seconds
        for r, name in enumerate(names):
            if diverged[r]:
                continue
            diverged[r] = not finite[r]
            values = {k: math.nan if diverged[r] else v[r] for k, v in stats.items()}
            rows[r].append({"epoch": epoch, **values, "seconds": seconds, "diverged": diverged[r],
                            **{f"weight_norm_{l + 1}": float(w[r].norm()) for l, w in enumerate(net.weights)}})
            log.info("%s epoch %d: train %.4f test %.4f residual %.2e%s", name, epoch, values["train_acc"],
                     values["test_acc"], values["free_residual"], " DIVERGED" if diverged[r] else "")
        opt_state = optimizer.state_dict()
        for r, (run, out_dir) in enumerate(zip(runs, out_dirs, strict=True)):
            member = net.member(r)
            if epoch in training["snapshot_epochs"]:
                snapshots[r][epoch] = {"weights": member.weights, "biases": member.biases}
            write_torch(Path(out_dir) / CHECKPOINT, {
                "run": run, "code": training_code(), "network": member.state_dict(),
                "optimizer": optimizer_member(opt_state, r),
                "epoch": epoch, "metrics": rows[r], "elapsed": elapsed, "snapshots": snapshots[r]})

    summaries = []
    for r, (run, out_dir) in enumerate(zip(runs, out_dirs, strict=True)):
        out_dir = Path(out_dir)
        metrics = pd.DataFrame(rows[r])
        summary = summarize(run, metrics, net.member(r), device, elapsed) | {"runs_trained_together": len(runs)}
        write_table(out_dir / "metrics.csv", metrics)
        write_json(out_dir / "summary.json", summary)
        if keep_model:
            write_torch(out_dir / "model.pt", torch.load(out_dir / CHECKPOINT, weights_only=False))
        else:
            (out_dir / CHECKPOINT).unlink(missing_ok=True)
        summaries.append(summary)
    return summaries


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


def summarize(run: dict, metrics: pd.DataFrame, net: EPNetwork, device, elapsed: float) -> dict:
    return run_summary(run, metrics, device, elapsed) | {
        "variant": run["variant"]["name"],
        "relaxation_engine": fused.engine(net),
        "relaxation_kernel": fused.kernel_id() if fused.engine(net) == "fused-cpu" else None,
        "code_fingerprint": training_code(),
        "dt_stats": dt_stats(net),
    }
