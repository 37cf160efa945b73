"""One epoch of EP training over a stack of runs: batches of EP estimates and SGD steps (``train_epoch``), then the
test metrics and relaxation diagnostics of every run (``evaluate``)."""

from __future__ import annotations

import logging

import torch
from tqdm import tqdm

from ..ep import fused
from ..ep.dynamics import dead_units, relaxation_diagnostics
from ..ep.model import EPNetwork, mse_loss, one_hot

log = logging.getLogger(__name__)


def leading(net: EPNetwork) -> int:
    """Number of stacked runs R (parameters are [R, out, in])."""
    return net.weights[0].shape[0]


@torch.no_grad()
def evaluate(net: EPNetwork, x, y, training: dict) -> dict[str, torch.Tensor]:
    """Per-run test metrics at the end of the free phase, its residual mean |s_T1 - s_{T1-1}| (over all free neurons,
    and per layer: ``free_residual_l<l>``, 1 the first hidden layer), and the
    relaxation diagnostics and dead units (htsep.ep.dynamics) of the first ``probe_size`` test samples.

    Test samples are relaxed ``eval_batch_size`` at a time over all R stacked runs (eval_batch_size // R per
    run), so the states stay in cache however many runs are stacked.
    """
    runs, n_classes = leading(net), net.sizes[-1]
    step = max(1, training["eval_batch_size"] // runs)
    loss, residual = (torch.zeros(runs, dtype=torch.float64, device=x.device) for _ in range(2))
    layer_residual = torch.zeros(len(net.sizes) - 1, runs, dtype=torch.float64, device=x.device)
    predicted = []
    for start in range(0, len(x), step):
        xb, yb = x[start:start + step].expand(runs, -1, -1), y[start:start + step]
        drives = net.drives(xb)  # step T1 as a branch from step T1 - 1: one input drive, one kernel call
        before, states = net.relax_phases(drives, net.zero_states(xb), training["free_steps"] - 1,
                                          branches=[(drives, 1, 0.0)])
        out = states[-1]
        moved = [(s - p).abs().sum((-2, -1)) for s, p in zip(states, before, strict=True)]
        residual += sum(moved)
        layer_residual += torch.stack(moved)
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
        **{f"free_residual_l{l + 1}": r / (len(x) * n)
           for l, (r, n) in enumerate(zip(layer_residual, net.sizes[1:], strict=True))},
        "pred_entropy": -torch.where(share > 0, share * share.log(), 0.0).sum(-1),
        "classes_never_predicted": (counts == 0).sum(-1),
        **diagnostics,
    }


class BatchEstimate:
    """``estimate(idx)``: the EP estimate on batches ``idx`` [R, batch] of (x, y), every run its own batch."""

    def __init__(self, net: EPNetwork, x, y, training: dict):
        self.net, self.x, self.training = net, x, training
        self.targets = one_hot(y, net.sizes[-1], x.dtype)  # one-hot once, then gathered per batch like the images

    def __call__(self, idx):
        rows = idx.flatten()  # index_select: a plain row copy, several times faster than x[idx] on the CPU
        xb, yb = (t.index_select(0, rows).view(*idx.shape, -1) for t in (self.x, self.targets))
        training = self.training
        return self.net.ep_estimate(xb, yb, training["beta"], training["free_steps"], training["nudged_steps"],
                                    training["symmetric"])


def batch_estimator(net: EPNetwork, x, y, training: dict):
    """The EP estimate of batches of (x, y) as training calls it: a BatchEstimate, whose batches train_epoch may
    hand to the fused CPU engine (fused.train_epoch); on CUDA the estimate of a full-size batch (about 500 small
    kernels) is replayed from a CUDA graph (see GraphedEstimate)."""
    estimate = BatchEstimate(net, x, y, training)
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
    ``estimate`` (see batch_estimator; where the fused CPU engine applies, it trains the batches after the first
    step in C++, the same numbers); per-run free-phase accuracy and loss, scored once at the end of the pass from
    the free-phase outputs each batch had."""
    runs, n_classes = leading(net), net.sizes[-1]
    outputs = torch.empty(runs, len(y), n_classes, device=y.device)
    for start in tqdm(range(0, len(y), training["batch_size"]), desc=progress, leave=False, disable=None):
        if isinstance(estimate, BatchEstimate) and estimate.net is net and fused.trains(net, optimizer):  # in C++
            fused.train_epoch(net, optimizer, estimate.x, estimate.targets, orders, training, outputs, start)
            break
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
