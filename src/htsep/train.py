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
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from . import __version__
from .data import as_tensors, dataset_label, load_split
from .files import write_json, write_table, write_torch
from .model import EPNetwork, mse_loss, one_hot
from .seeding import torch_rng

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("training.device is 'cuda' but torch.cuda.is_available() is False")
    return torch.device(name)


def make_optimizer(net: EPNetwork, training: dict) -> torch.optim.SGD:
    """SGD with momentum; layer l's weights and biases share learning rate lr[l]."""
    groups = [{"params": [w, b], "lr": lr} for w, b, lr in zip(net.weights, net.biases, training["lr"], strict=True)]
    return torch.optim.SGD(groups, lr=training["lr"][0], momentum=training["momentum"],
                           weight_decay=training["weight_decay"])


@torch.no_grad()
def evaluate(net: EPNetwork, x, y, training: dict) -> dict:
    """Test metrics at the end of the free phase, plus its residual mean |s_T1 - s_{T1-1}| (convergence)."""
    loss, residual = 0.0, 0.0
    predicted = []
    for start in range(0, len(x), training["eval_batch_size"]):
        xb, yb = x[start:start + training["eval_batch_size"]], y[start:start + training["eval_batch_size"]]
        before = net.relax(xb, training["free_steps"] - 1)
        states = net.relax(xb, 1, init=before)
        out = states[-1]
        residual += float(sum((s - p).abs().sum() for s, p in zip(states, before, strict=True)))
        loss += float(mse_loss(out, one_hot(yb, out.shape[-1], out.dtype)).sum())
        predicted.append(out.argmax(-1))
    predicted = torch.cat(predicted)
    counts = torch.bincount(predicted, minlength=net.sizes[-1]).double()
    share = counts / counts.sum()
    return {
        "test_acc": float((predicted == y).double().mean()),
        "test_loss": loss / len(x),
        "free_residual": residual / (len(x) * sum(net.sizes[1:])),
        "pred_entropy": float(-(share[share > 0] * share[share > 0].log()).sum()),
        "classes_never_predicted": int((counts == 0).sum()),
    }


def train_epoch(net, optimizer, x, y, training: dict, generator: torch.Generator, progress: str) -> dict:
    """One pass over the training set in a seeded random order; returns running free-phase accuracy and loss."""
    order = torch.randperm(len(x), generator=generator).to(x.device)
    correct = torch.zeros((), device=x.device)
    loss = torch.zeros((), device=x.device)
    for start in tqdm(range(0, len(x), training["batch_size"]), desc=progress, leave=False, disable=None):
        idx = order[start:start + training["batch_size"]]
        xb, yb = x[idx], y[idx]
        est = net.ep_estimate(xb, yb, training["beta"], training["free_steps"], training["nudged_steps"],
                              training["symmetric"])
        out = est.free_states[-1]
        correct += (out.argmax(-1) == yb).sum()
        loss += mse_loss(out, one_hot(yb, out.shape[-1], out.dtype)).sum()
        for param, grad in zip(net.parameters, est.grad_weights + est.grad_biases, strict=True):
            param.grad = grad
        optimizer.step()
    return {"train_acc": float(correct) / len(x), "train_loss": float(loss) / len(x)}


def is_finite(net: EPNetwork) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in net.parameters)


def dt_stats(net: EPNetwork) -> list[dict]:
    return [{"layer": l + 1, "mean": float(d.mean()), "std": float(d.std(unbiased=False)),
             "min": float(d.min()), "max": float(d.max())} for l, d in enumerate(net.dt)]


def train_run(run: dict, data_paths: dict, out_dir: str | Path) -> dict:
    """Train one run described by ``run`` (see htsep.config.run_slice); returns its summary."""
    out_dir = Path(out_dir)
    training, seed = run["training"], run["seed"]
    torch.set_num_threads(training.get("threads", 1))
    device = resolve_device(training["device"])
    train_split, test_split = load_split(data_paths["train"]), load_split(data_paths["test"])
    normalize = run["dataset"].get("normalize")
    x_train, y_train = (t.to(device) for t in as_tensors(train_split, normalize))
    x_test, y_test = (t.to(device) for t in as_tensors(test_split, normalize))

    net = EPNetwork(run["model"]["sizes"], run["variant"]["dt"], run["model"]["activation"], seed=seed, device=device)
    optimizer = make_optimizer(net, training)
    rows, first_epoch, elapsed = [], 1, 0.0
    checkpoint_path = out_dir / CHECKPOINT
    if checkpoint_path.exists():
        ckpt = torch.load(checkpoint_path, map_location=device, weights_only=False)
        if ckpt["run"] == run:
            net = EPNetwork.from_state_dict(ckpt["network"], device=device)
            optimizer = make_optimizer(net, training)
            optimizer.load_state_dict(ckpt["optimizer"])
            rows, first_epoch, elapsed = ckpt["metrics"], ckpt["epoch"] + 1, ckpt["elapsed"]
            log.info("resuming %s from epoch %d", out_dir, first_epoch)
        else:
            log.warning("%s belongs to another config; starting afresh", checkpoint_path)

    name = f"{run['dataset']['name']}/{run['variant']['name']}/seed{seed}"
    diverged = bool(rows) and rows[-1]["diverged"]
    for epoch in range(first_epoch, training["epochs"] + 1):
        if diverged:
            break
        start = time.perf_counter()
        stats = train_epoch(net, optimizer, x_train, y_train, training, torch_rng(seed, "batches", epoch),
                            f"{name} epoch {epoch}")
        diverged = not (is_finite(net) and math.isfinite(stats["train_loss"]))
        if diverged:
            stats = dict.fromkeys(("train_acc", "train_loss", "test_acc", "test_loss", "free_residual",
                                   "pred_entropy", "classes_never_predicted"), math.nan)
        else:
            stats |= evaluate(net, x_test, y_test, training)
        seconds = time.perf_counter() - start
        elapsed += seconds
        rows.append({"epoch": epoch, **stats, "seconds": seconds, "diverged": diverged,
                     **{f"weight_norm_{l + 1}": float(w.norm()) for l, w in enumerate(net.weights)}})
        log.info("%s epoch %d: train %.4f test %.4f residual %.2e%s", name, epoch, rows[-1]["train_acc"],
                 rows[-1]["test_acc"], rows[-1]["free_residual"], " DIVERGED" if diverged else "")
        write_torch(checkpoint_path, {"run": run, "network": net.state_dict(), "optimizer": optimizer.state_dict(),
                                      "epoch": epoch, "metrics": rows, "elapsed": elapsed})

    metrics = pd.DataFrame(rows)
    summary = summarize(run, metrics, net, device, elapsed)
    write_table(out_dir / "metrics.csv", metrics)
    write_json(out_dir / "summary.json", summary)
    write_torch(out_dir / "model.pt", torch.load(checkpoint_path, weights_only=False))
    return summary


def summarize(run: dict, metrics: pd.DataFrame, net: EPNetwork, device, elapsed: float) -> dict:
    finite = metrics[~metrics["diverged"]]
    diverged = bool(metrics["diverged"].any())
    best = finite.loc[finite["test_acc"].idxmax()] if len(finite) else None
    return {
        "dataset": run["dataset"]["name"],
        "dataset_label": dataset_label(run["dataset"]["name"], run["dataset"]["split"]),
        "split": run["dataset"]["split"],
        "variant": run["variant"]["name"],
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
        "dt_stats": dt_stats(net),
        "config": run,
        "versions": {"htsep": __version__, "torch": torch.__version__, "numpy": np.__version__,
                     "python": sys.version.split()[0], "platform": platform.platform()},
    }
