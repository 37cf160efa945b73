"""The stability frontier's runs: pure functions of the config, read by the workflow to build its DAG.

A frontier sweep starts from one training protocol and moves one stress axis (a training key, scaled or set to
each level, e.g. every layer's learning rate x 1 ... x 16) from safe to broken, for the mean-matched uniform control
and heterogeneous dt variants, many seeds per cell, on the full training and test sets. Two stages share the
machinery: ``pilot`` (a few seeds of the control on the fit/validation split, to place the levels) and ``sweep``
(the frontier itself). The sweep also trains the ``positive_control`` variant, a uniform step whose critical level
theory puts elsewhere, so that the sweep shows it can see a shift. ``sweep`` runs are trained shard by shard (config
key ``frontier_shard``: datasets, axes, levels, variants and a seed range); each shard's per-run table is committed
under records.root and the analysis (``htsep.experiments.frontier.stats``) reads every committed shard together with
those this invocation trains.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

from ...config import (
    ConfigError,
    canonical,
    check_protocol_and_datasets,
    check_subset,
    check_training,
    protocol_training,
    run_slice,
)
from ...outcomes import FAILURE_CRITERIA
from ...paths import FRONTIER, number

KEYS = ["dataset", "axis", "level", "variant", "seed"]  # a frontier run
STAGES = ("pilot", "sweep")
SHARD_KEYS = ("datasets", "axes", "levels", "variants", "seeds")


def check(config: Mapping) -> None:
    """Frontier config errors the schema cannot express, each naming its key."""
    spec = config["frontier"]
    defined = [v["name"] for v in config["variants"]]
    for name in spec["variants"]:
        if name not in defined:
            raise ConfigError(f"config key frontier.variants: {name!r} is not in variants {defined}")
    control = spec.get("positive_control")
    if control:
        if control["variant"] not in defined or control["variant"] in spec["variants"]:
            raise ConfigError(f"config key frontier.positive_control.variant: {control['variant']!r} must be in "
                              f"variants {defined} and not one of frontier.variants {spec['variants']}")
        if control["baseline"] not in spec["variants"]:
            raise ConfigError(f"config key frontier.positive_control.baseline: {control['baseline']!r} is not in "
                              f"frontier.variants {spec['variants']}")
    check_protocol_and_datasets(config, "frontier")
    for dataset in spec["datasets"]:
        check_subset(config, dataset)
    for name, axis in spec["axes"].items():
        for dataset in spec["datasets"]:
            levels = axis_levels(spec, name, dataset)
            if len(levels) < 2:
                raise ConfigError(f"config key frontier.axes.{name}.levels: a stress axis needs at least two levels, "
                                  f"got {levels} for {dataset}")
        if axis["key"] not in config["training"]:
            raise ConfigError(f"config key frontier.axes.{name}.key: {axis['key']!r} is not a training key")
        stages = [("sweep", d, axis_levels(spec, name, d)) for d in spec["datasets"]]
        stages += [("pilot", "pilot", spec["pilot"]["levels"][name])] if name in spec["pilot"]["levels"] else []
        for stage, where, levels in stages:
            for level in levels:  # every level trains as a protocol would: the same checks
                check_training(config, level_training(config, name, level, stage),
                               f"config key frontier.axes.{name}: level {level} ({where})")
    for name in spec["run_axes"]:
        if name not in spec["axes"]:
            raise ConfigError(f"config key frontier.run_axes: {name!r} is not an axis of frontier.axes "
                              f"{sorted(spec['axes'])}")
    for criterion in spec["failure"]["criteria"]:
        if criterion not in FAILURE_CRITERIA:
            raise ConfigError(f"config key frontier.failure.criteria: unknown measure {criterion!r} "
                              f"(known: {', '.join(FAILURE_CRITERIA)})")
    shard = shard_spec(config)
    for key, known in (("datasets", spec["datasets"]), ("axes", spec["run_axes"]),
                       ("variants", sweep_variants(spec))):
        for name in shard[key] or []:
            if name not in known:
                raise ConfigError(f"config key frontier_shard.{key}: {name!r} is not one of {known}")
    for axis in shard["axes"]:
        for dataset in shard["datasets"]:
            levels = axis_levels(spec, axis, dataset)
            for level in shard["levels"] or []:
                if level not in levels:
                    raise ConfigError(f"config key frontier_shard.levels: {level} is not a level of axis {axis} on "
                                      f"{dataset} {levels}")
    start, stop = shard["seeds"]
    if not 0 <= start < stop <= spec["seeds"]:
        raise ConfigError(f"config key frontier_shard.seeds: need [first, stop) with 0 <= first < stop <= "
                          f"frontier.seeds ({spec['seeds']}), got {shard['seeds']}")


def positive_control(spec: Mapping) -> dict | None:
    """The positive control's pair (variant, baseline), or None; its prediction stays out of the analysis."""
    control = spec.get("positive_control")
    return {"variant": control["variant"], "baseline": control["baseline"]} if control else None


def sweep_variants(spec: Mapping) -> list[str]:
    """Every variant the sweep trains: frontier.variants (the control first), then the positive control's."""
    control = positive_control(spec)
    return list(spec["variants"]) + ([control["variant"]] if control else [])


def axis_levels(spec: Mapping, axis: str, dataset: str) -> list[float]:
    """The levels of frontier axis ``axis`` on ``dataset`` (``levels``: one list, or one list per dataset)."""
    levels = spec["axes"][axis]["levels"]
    if isinstance(levels, Mapping):
        if dataset not in levels:
            raise ConfigError(f"config key frontier.axes.{axis}.levels: no levels for dataset {dataset!r} "
                              f"(given for {sorted(levels)})")
        levels = levels[dataset]
    return list(levels)


def shard_spec(config: Mapping) -> dict:
    """What this invocation trains: config key ``frontier_shard`` with its nulls filled in (every dataset, every
    axis in run_axes, every level, every sweep variant, seeds [0, frontier.seeds); an empty list of datasets or
    axes, or config key records.train none, trains nothing, so the analysis reads the committed shards only) and its
    numbers as numbers (``snakemake --config`` passes nested values as strings)."""
    spec, shard = config["frontier"], dict(config.get("frontier_shard") or {})
    unknown = sorted(set(shard) - set(SHARD_KEYS))
    if unknown:
        raise ConfigError(f"config key frontier_shard: unknown keys {unknown} (known: {', '.join(SHARD_KEYS)})")
    levels = shard.get("levels")
    datasets = list(spec["datasets"]) if shard.get("datasets") is None else list(shard["datasets"])
    return {"datasets": [] if config["records"]["train"] == "none" else datasets,
            "axes": list(spec["run_axes"]) if shard.get("axes") is None else list(shard["axes"]),
            "levels": [float(level) for level in levels] if levels else None,
            "variants": list(shard["variants"]) if shard.get("variants") else None,
            "seeds": [int(seed) for seed in shard.get("seeds") or [0, spec["seeds"]]]}


def shard_name(dataset: str, axis: str, shard: Mapping) -> str:
    """File stem of one (dataset, axis) part of a shard, e.g. 'fashion_mnist-lr-seeds0-9' ('-levels1_2' when the
    shard names its levels, '-uniform_1.0' its variants)."""
    start, stop = shard["seeds"]
    levels = f"-levels{'_'.join(map(number, shard['levels']))}" if shard["levels"] else ""
    variants = "".join(f"-{v}" for v in shard.get("variants") or [])
    return f"{dataset}-{axis}{levels}{variants}-seeds{start}-{stop - 1}"


def shard_tables(config: Mapping) -> dict[str, tuple[str, str]]:
    """This invocation's shard tables (path -> (dataset, axis)), one per (dataset, axis) of its shard."""
    shard = shard_spec(config)
    return {f"{FRONTIER}/shards/{shard_name(d, a, shard)}.runs.csv": (d, a) for d in shard["datasets"]
            for a in shard["axes"]}


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
    """(variants, seeds) every level of a stage trains: the control's pilot seeds, or the shard's variants and seed
    range."""
    spec = config["frontier"]
    if stage == "pilot":
        return [spec["variants"][0]], list(spec["pilot"]["seeds"])
    shard = shard_spec(config)
    start, stop = shard["seeds"]
    return shard["variants"] or sweep_variants(spec), list(range(start, stop))


def stage_levels(config: Mapping, stage: str, dataset: str, axis: str) -> list[float]:
    spec = config["frontier"]
    if stage == "pilot":
        return list(spec["pilot"]["levels"][axis])
    return list(shard_spec(config)["levels"] or axis_levels(spec, axis, dataset))


def run_folder(stage: str, dataset: str, axis: str, level: float, variant: str, seed: int) -> str:
    return f"{FRONTIER}/{stage}/{dataset}/{axis}/{number(level)}/{variant}/seed{seed}"


def level_job(config: Mapping, stage: str, dataset: str, axis: str, level: str) -> list[tuple[str, dict]]:
    """[(run folder, run config)] of one training job: every variant x seed of one level, stacked."""
    value = next((x for x in stage_levels(config, stage, dataset, axis) if number(x) == level), None)
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


def declared(config: Mapping) -> dict[tuple, dict]:
    """Key (dataset, axis, level, variant, seed) -> run config of every sweep run the config declares: every
    dataset, axis and level, sweep variant and seed 0 .. frontier.seeds - 1."""
    spec = config["frontier"]
    runs = {}
    for dataset in spec["datasets"]:
        for axis in spec["axes"]:
            for level in axis_levels(spec, axis, dataset):
                training = level_training(config, axis, level, "sweep")
                for variant in sweep_variants(spec):
                    for seed in range(spec["seeds"]):
                        runs[(dataset, axis, float(level), variant, seed)] = frontier_run(
                            config, dataset, axis, level, variant, seed, "sweep", training)
    return runs
