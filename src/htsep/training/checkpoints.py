"""Checkpoints: the state of each run of a stack after an epoch, written atomically, resumed only by the same run
config, training code and engine, and deleted once the run's outputs are written (so a forced rerun retrains)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from ..ep import fused
from ..ep.model import EPNetwork
from ..files import read_torch
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


def engine_id(net: EPNetwork, device) -> str:
    """What computes a run's numbers, e.g. 'fused-cpu on cpu' or 'torch on cuda': a resume must not change it, so
    that summary.json's relaxation_engine describes every epoch."""
    return f"{fused.engine(net)} on {torch.device(device).type}"


def load_checkpoints(runs, out_dirs, device, engine: str):
    """Resume state of all runs if each has a checkpoint of its own config, training code and engine at one common
    epoch, else None (an unreadable checkpoint is a DamagedFileError, set aside)."""
    paths = [Path(d) / CHECKPOINT for d in out_dirs]
    if not all(p.exists() for p in paths):
        return None
    ckpts = [read_torch(p, "checkpoint", map_location=device) for p in paths]
    if any(c["run"] != run for c, run in zip(ckpts, runs, strict=True)) or len({c["epoch"] for c in ckpts}) > 1:
        log.warning("checkpoints in %s do not match this config; starting afresh", out_dirs)
        return None
    if any(c.get("code") != training_code() for c in ckpts):
        log.warning("checkpoints in %s were written by other training code; starting afresh", out_dirs)
        return None
    if any(c.get("engine") != engine for c in ckpts):
        log.warning("checkpoints in %s were computed by another engine (%s, not %s); starting afresh", out_dirs,
                    sorted({str(c.get("engine")) for c in ckpts}), engine)
        return None
    return ckpts


def checkpoint_state(run: dict, net: EPNetwork, optimizer_state: dict, engine: str, epoch: int, metrics: list[dict],
                     elapsed: float, snapshots: dict) -> dict:
    """What a checkpoint (and a finished run's model.pt) holds: the run, the training code and engine, the network
    and optimizer state after ``epoch``, the metric rows, the wall time so far and the weight snapshots."""
    return {"run": run, "code": training_code(), "engine": engine, "network": net.state_dict(),
            "optimizer": optimizer_state, "epoch": epoch, "metrics": metrics, "elapsed": elapsed,
            "snapshots": snapshots}
