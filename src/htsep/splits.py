"""Prepared dataset splits as training reads them: cached tensors, their display names, the network's input.

Kept apart from ``data`` (which prepares the splits with torchvision) so that training never imports torchvision.
"""

from __future__ import annotations

import os

import torch

_LABELS = {"mnist": "MNIST", "kmnist": "KMNIST", "fashion_mnist": "Fashion-MNIST", "synthetic": "Synthetic"}


def dataset_label(name: str, split: str = "official") -> str:
    """Display name, e.g. ``"Fashion-MNIST"`` or ``"KMNIST (test-set holdout)"``."""
    label = _LABELS[name]
    return f"{label} (test-set holdout)" if split == "test-holdout" else label


def load_split(path: str | os.PathLike) -> dict:
    """A prepared split: ``images`` uint8 [N,28,28], ``labels`` int64 [N], ``index`` (rows of the source
    IDX file) and ``provenance``."""
    return torch.load(path, weights_only=True)


def as_tensors(split: dict, normalize: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x float32 [N,784], y int64 [N])``: x = images / 255, then ``(x - mean) / std`` if ``normalize``."""
    x = split["images"].reshape(len(split["images"]), -1).to(torch.float32).div_(255)
    if normalize is not None:
        x.sub_(normalize["mean"]).div_(normalize["std"])
    return x, split["labels"].to(torch.int64)
