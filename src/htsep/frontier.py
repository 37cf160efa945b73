"""The stability frontier's runs: pure functions of the config, read by the workflow to build its DAG.

A frontier sweep starts from one training protocol and moves one stress axis (a training key, scaled or set to
each level, e.g. every layer's learning rate x 1 ... x 16) from safe to broken, for the mean-matched uniform control
and heterogeneous dt variants, many seeds per cell, on the full training and test sets. Two stages share the
machinery: ``pilot`` (a few seeds of the control on the fit/validation split, to place the levels) and ``sweep``
(the frontier itself). ``sweep`` runs are trained shard by shard (config key ``frontier_shard``: datasets, axes,
levels and a seed range); each shard's per-run table is committed under ``frontier.records`` and the analysis
(``htsep.frontier_stats``) reads every committed shard together with those this invocation trains.
"""

from __future__ import annotations

import copy
import glob
from collections.abc import Mapping

from .config import ConfigError, axis_levels, canonical, protocol_training, run_slice, shard_spec
from .sweeps import fmt

FRONTIER_DIR = "results/frontier"
STAGES = ("pilot", "sweep")


def shard_name(dataset: str, axis: str, shard: Mapping) -> str:
    """File stem of one (dataset, axis) part of a shard, e.g. 'fashion_mnist-lr-seeds0-9' ('-levels1_2' when the
    shard names its levels)."""
    start, stop = shard["seeds"]
    levels = f"-levels{'_'.join(map(fmt, shard['levels']))}" if shard["levels"] else ""
    return f"{dataset}-{axis}{levels}-seeds{start}-{stop - 1}"


def axis_training(training: Mapping, axis: Mapping, level: float) -> dict:
    """``training`` at one level of a stress axis: key scaled by the level (each layer's value for lists) or set
    to it."""
    out = copy.deepcopy(dict(training))
    value = out[axis["key"]]
    if axis["mode"] == "scale":
        out[axis["key"]] = [level * v for v in value] if isinstance(value, list) else level * value
    else:
        out[axis["key"]] = level
    return out


def level_training(config: Mapping, axis: str, level: float, stage: str) -> dict:
    """The training config of one level: the frontier protocol with the axis at ``level``, the stage's epochs and
    no snapshots."""
    spec = config["frontier"]
    training = axis_training(protocol_training(config, spec["protocol"]), spec["axes"][axis], level)
    epochs = spec["pilot"]["epochs"] if stage == "pilot" else spec["epochs"]
    return canonical(training | {"epochs": epochs, "snapshot_epochs": []})


def frontier_run(config: Mapping, dataset: str, axis: str, level: float, variant: str, seed: int, stage: str,
                 training: Mapping | None = None) -> dict:
    """The effective config of one frontier run (``training``: its level's, if already computed), tagged with
    its coordinates."""
    training = training or level_training(config, axis, level, stage)
    run = run_slice(config, dataset, variant, seed, config["frontier"]["protocol"], training=training)
    return canonical(run | {"sweep": {"name": f"frontier_{stage}", "axis": axis, "level": float(level)}})


def stage_members(config: Mapping, stage: str) -> tuple[list[str], list[int]]:
    """(variants, seeds) every level of a stage trains: the control's pilot seeds, or the shard's seed range."""
    spec = config["frontier"]
    if stage == "pilot":
        return [spec["variants"][0]], list(spec["pilot"]["seeds"])
    start, stop = shard_spec(config)["seeds"]
    return list(spec["variants"]), list(range(start, stop))


def stage_levels(config: Mapping, stage: str, dataset: str, axis: str) -> list[float]:
    spec = config["frontier"]
    if stage == "pilot":
        return list(spec["pilot"]["levels"][axis])
    return list(shard_spec(config)["levels"] or axis_levels(spec, axis, dataset))


def run_folder(stage: str, dataset: str, axis: str, level: float, variant: str, seed: int) -> str:
    return f"{FRONTIER_DIR}/{stage}/{dataset}/{axis}/{fmt(level)}/{variant}/seed{seed}"


def level_job(config: Mapping, stage: str, dataset: str, axis: str, level: str) -> list[tuple[str, dict]]:
    """[(run folder, run config)] of one training job: every variant x seed of one level, stacked."""
    value = next((x for x in stage_levels(config, stage, dataset, axis) if fmt(x) == level), None)
    if value is None:
        raise ConfigError(f"frontier {stage}: {level} is not a level of axis {axis}")
    variants, seeds = stage_members(config, stage)
    training = level_training(config, axis, value, stage)
    return [(run_folder(stage, dataset, axis, value, v, s),
             frontier_run(config, dataset, axis, value, v, s, stage, training)) for v in variants for s in seeds]


def stage_folders(config: Mapping, stage: str, dataset: str, axis: str) -> list[str]:
    """Every run folder of a stage on one (dataset, axis)."""
    variants, seeds = stage_members(config, stage)
    return [run_folder(stage, dataset, axis, level, v, s) for level in stage_levels(config, stage, dataset, axis)
            for v in variants for s in seeds]


def pilot_axes(config: Mapping) -> list[str]:
    return [axis for axis in config["frontier"]["run_axes"] if axis in config["frontier"]["pilot"]["levels"]]


def recorded_shards(config: Mapping) -> list[str]:
    """The committed shard tables (config key frontier.records, a glob relative to the working directory)."""
    return sorted(glob.glob(config["frontier"]["records"]))
