"""Subsets of a prepared split: its first images of each class, or its first images (no torchvision needed)."""

from __future__ import annotations

import numpy as np
import torch


def first_per_class(labels: torch.Tensor, n: int) -> np.ndarray:
    """Sorted positions of the first ``n`` samples of each class; ValueError if a class has fewer."""
    keep = []
    for c in np.unique(labels.numpy()):
        idx = np.flatnonzero(labels.numpy() == c)
        if len(idx) < n:
            raise ValueError(f"subset={n} exceeds the {len(idx)} training images of class {c}")
        keep.append(idx[:n])
    return np.sort(np.concatenate(keep))


def subset_split(split: dict, per_class: int | None = None, first: int | None = None) -> dict:
    """A prepared split cut to its first ``per_class`` images of each class and/or its first ``first`` images."""
    index = torch.arange(len(split["labels"]))
    if per_class is not None:
        index = torch.from_numpy(first_per_class(split["labels"], per_class))
    if first is not None:
        index = index[:first]
    provenance = {**split["provenance"], "mechanism_subset": {"per_class": per_class, "first": first},
                  "n": len(index)}
    return {"images": split["images"][index], "labels": split["labels"][index], "index": split["index"][index],
            "provenance": provenance}
