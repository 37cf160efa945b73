"""Training one run of the calibration search (EP or backprop) on the fit split, scored on the validation split."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ...training.backprop import train_backprop
from ...training.runs import train_run


def train_point(kind: str, run: dict, data_paths: Mapping, out_dir: str | Path) -> dict:
    """Train one search run (EP or backprop) with data_paths {"train": fit split, "test": validation split}."""
    return (train_backprop if kind == "backprop" else train_run)(run, data_paths, out_dir)
