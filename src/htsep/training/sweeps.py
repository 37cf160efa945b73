"""Training the runs of a mechanism sweep (planned by ``htsep.experiments.mechanism.plan``) with ``htsep.training.runs``
on a data subset."""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from ..data.splits import load_split
from ..data.subsets import subset_split
from .runs import train_runs

log = logging.getLogger(__name__)


def train_sweep(runs: Sequence[Mapping], folders: Sequence[str], data_paths: Mapping[str, str],
                keep_model: bool = True) -> list[dict]:
    """Train a sweep job's runs: one stacked ``train_runs`` call per distinct training config, on the runs' data
    subset (all runs of a job share the dataset and subset; ``keep_model``: as in ``train_runs``)."""
    datasets = {json.dumps(run["dataset"], sort_keys=True) for run in runs}
    if len(datasets) != 1:
        raise ValueError("train_sweep: all runs of a job must share their dataset config")
    dataset = runs[0]["dataset"]
    groups: dict[str, list[int]] = {}
    for i, run in enumerate(runs):
        groups.setdefault(json.dumps(run["training"], sort_keys=True), []).append(i)
    summaries = []
    with tempfile.TemporaryDirectory(prefix="htsep-sweep-") as tmp:
        paths = {"train": Path(tmp) / "train.pt", "test": Path(tmp) / "test.pt"}
        torch.save(subset_split(load_split(data_paths["train"]), per_class=dataset.get("train_subset")),
                   paths["train"])
        torch.save(subset_split(load_split(data_paths["test"]), first=dataset.get("test_subset")), paths["test"])
        for members in groups.values():
            log.info("training %d runs with %s", len(members), runs[members[0]]["sweep"])
            summaries += train_runs([runs[i] for i in members], paths, [folders[i] for i in members],
                                    keep_model)
    return summaries
