"""Prepared dataset splits as training reads them: cached tensors, their display names, the network's input.

Kept apart from ``data`` (which prepares the splits with torchvision) so that training never imports torchvision.
"""

from __future__ import annotations

import os

import torch

from ..files import damaged, read_torch, write_torch


def load_split(path: str | os.PathLike) -> dict:
    """A prepared split: ``images`` uint8 [N,28,28], ``labels`` int64 [N], ``index`` (rows of the source
    IDX file) and ``provenance``."""
    split = read_torch(path, "prepared split")
    if not {"images", "labels", "index", "provenance"} <= set(split):
        raise damaged(path, f"a prepared split needs images, labels, index and provenance; it has {sorted(split)}")
    return split


def as_tensors(split: dict, normalize: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x float32 [N,784], y int64 [N])``: x = images / 255, then ``(x - mean) / std`` if ``normalize``."""
    x = split["images"].reshape(len(split["images"]), -1).to(torch.float32).div_(255)
    return normalised(x, normalize), split["labels"].to(torch.int64)


def normalised(pixels: torch.Tensor, normalize: dict | None) -> torch.Tensor:
    """Pixels in [0, 1] as the network sees them: ``(x - mean) / std`` if ``normalize`` (in place), else as they are."""
    return pixels if normalize is None else pixels.sub_(normalize["mean"]).div_(normalize["std"])


def carve_validation(split: dict, per_class: int, seed: int) -> tuple[dict, dict]:
    """(fit, validation): a stratified, seeded ``per_class`` images of each class set aside from a prepared
    training split, the rest kept for fitting. Calibration trains on ``fit`` and scores on ``validation``, so the
    test set never takes part in a choice. Both keep the source rows (``index``) and record the carving."""
    labels = split["labels"]
    rng = torch.Generator().manual_seed(seed)
    held = []
    for c in labels.unique().tolist():
        rows = (labels == c).nonzero().flatten()
        if len(rows) - per_class < per_class:
            raise ValueError(f"validation_per_class={per_class} would leave fewer training images than it takes: "
                             f"class {c} has {len(rows)}")
        held.append(rows[torch.randperm(len(rows), generator=rng)[:per_class]])
    validation = torch.zeros(len(labels), dtype=torch.bool)
    validation[torch.cat(held)] = True
    carving = {"per_class": per_class, "seed": seed, "n_validation": int(validation.sum()),
               "n_fit": int((~validation).sum())}

    def part(mask, name):
        provenance = {**split["provenance"], "part": name, "validation_split": carving}
        return {"images": split["images"][mask], "labels": labels[mask], "index": split["index"][mask],
                "provenance": provenance}

    return part(~validation, "fit"), part(validation, "validation")


def write_validation_split(train_path: str | os.PathLike, outputs: dict, per_class: int, seed: int) -> None:
    """Carve ``outputs['validation']`` from the prepared training split; the rest goes to ``outputs['fit']``."""
    fit, validation = carve_validation(load_split(train_path), per_class, seed)
    write_torch(outputs["fit"], fit)
    write_torch(outputs["validation"], validation)
