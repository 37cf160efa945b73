"""Checkpoints: the state of each run of a stack after an epoch, written atomically and resumed only by the same run
config and training code."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from ..ep.model import EPNetwork
from ..files import write_torch
from ..fingerprint import code_fingerprint

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"


def training_code() -> str:
    """Fingerprint of the code a training run executes (this module and all it imports, the kernel source too):
    part of a run's identity in its checkpoint and summary, so an engine edit retrains instead of resuming."""
    return code_fingerprint("training.runs")


def optimizer_member(state: dict, r: int) -> dict:
    return {"param_groups": state["param_groups"],
            "state": {i: {k: v[r].clone() for k, v in s.items()} for i, s in state["state"].items()}}


def optimizer_stack(states: list[dict]) -> dict:
    return {"param_groups": states[0]["param_groups"],
            "state": {i: {k: torch.stack([st["state"][i][k] for st in states]) for k in s}
                      for i, s in states[0]["state"].items()}}


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


def save_checkpoint(out_dir, run: dict, net: EPNetwork, optimizer_state: dict, epoch: int, metrics: list[dict],
                    elapsed: float, snapshots: dict) -> None:
    """Write ``out_dir``'s checkpoint: the run, the training code, its network and optimizer state after ``epoch``,
    its metric rows, the wall time so far and its weight snapshots."""
    write_torch(Path(out_dir) / CHECKPOINT, {
        "run": run, "code": training_code(), "network": net.state_dict(), "optimizer": optimizer_state,
        "epoch": epoch, "metrics": metrics, "elapsed": elapsed, "snapshots": snapshots})
