"""The backprop reference: the EP network's feedforward counterpart trained by backpropagation.

Same sizes, the same hidden activation, the same initial weights per seed (EPNetwork's init), data, epochs, batch
size and batch order as the EP runs; the output layer is linear (logits) and the loss and optimiser are its own,
chosen on the validation split (config keys calibration.backprop_search and backprop). It is the reference
ceiling of the study, not a dt variant: its summary.json and metrics.csv have the EP runs' format with protocol
and variant ``backprop``.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from ..config import BACKPROP
from ..data.splits import as_tensors, load_split
from ..ep.model import ACTIVATIONS, EPNetwork
from ..files import write_json, write_table, write_torch
from ..fingerprint import code_fingerprint
from ..seeding import torch_rng
from .runs import make_optimizer, resolve_device, run_summary, subnormals_flushed

log = logging.getLogger(__name__)

LOSSES = {
    "mse": lambda logits, y: 0.5 * (logits - F.one_hot(y, logits.shape[-1]).to(logits.dtype)).pow(2).sum(-1),
    "cross_entropy": lambda logits, y: F.cross_entropy(logits, y, reduction="none"),
}


def forward(net: EPNetwork, x: torch.Tensor) -> torch.Tensor:
    """Logits W_L h_{L-1} + b_L of the feedforward pass h_l = sigma(W_l h_{l-1} + b_l), h_0 = x."""
    sigma = ACTIVATIONS[net.activation].autograd
    h = x
    for w, b in zip(net.weights[:-1], net.biases[:-1], strict=True):
        h = sigma(torch.addmm(b, h, w.mT))
    return torch.addmm(net.biases[-1], h, net.weights[-1].mT)


@torch.no_grad()
def evaluate(net: EPNetwork, x, y, loss, chunk: int) -> tuple[float, float, int]:
    """(accuracy, mean loss, classes never predicted) on (x, y)."""
    correct, total = 0, 0.0
    counts = torch.zeros(net.sizes[-1], dtype=torch.long)
    for start in range(0, len(x), chunk):
        logits = forward(net, x[start:start + chunk])
        correct += int((logits.argmax(-1) == y[start:start + chunk]).sum())
        total += float(loss(logits, y[start:start + chunk]).double().sum())
        counts += torch.bincount(logits.argmax(-1).cpu(), minlength=net.sizes[-1])
    return correct / len(x), total / len(x), int((counts == 0).sum())


@subnormals_flushed()
def train_backprop(run: dict, data_paths: dict, out_dir: str | Path) -> dict:
    """Train one backprop reference run (htsep.config.backprop_slice) -> metrics.csv, summary.json, model.pt."""
    training, out_dir = run["training"], Path(out_dir)
    torch.set_num_threads(training.get("threads", 1))
    device = resolve_device(training["device"])
    normalize = run["dataset"].get("normalize")
    x_train, y_train = (t.to(device) for t in as_tensors(load_split(data_paths["train"]), normalize))
    x_test, y_test = (t.to(device) for t in as_tensors(load_split(data_paths["test"]), normalize))
    net = EPNetwork(run["model"]["sizes"], 1.0, run["model"]["activation"], seed=run["seed"], device=device)
    for p in net.parameters:
        p.requires_grad_(True)
    optimizer = make_optimizer(net, training)
    loss_fn = LOSSES[training["loss"]]
    rows, elapsed = [], 0.0
    for epoch in range(1, training["epochs"] + 1):
        start = time.perf_counter()
        order = torch.randperm(len(x_train), generator=torch_rng(run["seed"], "batches", epoch)).to(device)
        correct, total = torch.zeros((), dtype=torch.long), torch.zeros((), dtype=torch.float64)
        for b in range(0, len(order), training["batch_size"]):
            idx = order[b:b + training["batch_size"]]
            logits = forward(net, x_train[idx])
            losses = loss_fn(logits, y_train[idx])
            optimizer.zero_grad()
            losses.mean().backward()
            optimizer.step()
            correct += (logits.detach().argmax(-1) == y_train[idx]).sum().cpu()
            total += losses.detach().double().sum().cpu()
        diverged = not (math.isfinite(float(total)) and all(bool(torch.isfinite(p).all()) for p in net.parameters))
        test_acc, test_loss, never_predicted = (math.nan, math.nan, math.nan) if diverged else evaluate(
            net, x_test, y_test, loss_fn, training["eval_batch_size"])
        seconds = time.perf_counter() - start
        elapsed += seconds
        rows.append({"epoch": epoch, "train_acc": math.nan if diverged else float(correct) / len(order),
                     "train_loss": math.nan if diverged else float(total) / len(order), "test_acc": test_acc,
                     "test_loss": test_loss, "classes_never_predicted": never_predicted, "seconds": seconds,
                     "diverged": diverged})
        log.info("backprop %s seed%d epoch %d: train %.4f test %.4f", run["dataset"]["name"], run["seed"], epoch,
                 rows[-1]["train_acc"], test_acc)
        if diverged:
            break
    metrics = pd.DataFrame(rows)
    summary = run_summary(run, metrics, device, elapsed) | {
        "variant": BACKPROP, "dt_stats": [], "code_fingerprint": code_fingerprint("training.backprop")}
    write_table(out_dir / "metrics.csv", metrics)
    write_json(out_dir / "summary.json", summary)
    write_torch(out_dir / "model.pt", {"run": run, "weights": [w.detach() for w in net.weights],
                                       "biases": [b.detach() for b in net.biases]})
    return summary
