"""The sensitivity experiment's runs, pure functions of the config: for each axis (a training key of the protocol)
and each of its datasets, every level x variant x seed, plus the protocol's own point (axis ``base``, trained once and
shared by every axis, where it sits at the protocol's value of the key), on the full training and test sets.

Each run is the protocol's run config with the key set to the level, the experiment's epochs and no snapshots,
tagged with its coordinates (``sweep``: name, axis, level); one job trains one run
(``results/sensitivity/runs/<dataset>/<axis>/<level>/<variant>/seed<seed>``).
"""

from __future__ import annotations

from collections.abc import Mapping

from ...config import ConfigError, canonical, check_protocol_and_datasets, check_training, protocol_training, run_slice
from ...outcomes import FAILURE_CRITERIA
from ...paths import SENSITIVITY, number
from ...records import to_train

KEYS = ("dataset", "axis", "level", "variant", "seed")  # a sensitivity run
BASE = "base"  # the protocol's own point, shared by every axis
BASE_LEVEL = 0.0  # its level in the key columns (its value on an axis is the protocol's)
SHARD = {"runs": f"{SENSITIVITY}/shard.runs.csv"}  # this invocation's runs
RUN = f"{SENSITIVITY}/runs/{{dataset}}/{{axis}}/{{level}}/{{variant}}/seed{{seed}}"  # one run's folder (a pattern)
INTEGER_KEYS = ("free_steps", "nudged_steps")


def run_axes(spec: Mapping) -> dict[str, Mapping]:
    """The axes the experiment trains (config key sensitivity.run_axes), by name."""
    return {axis: spec["axes"][axis] for axis in spec["run_axes"]}


def axis_datasets(spec: Mapping, axis: str) -> list[str]:
    return list(spec["axes"][axis].get("datasets") or spec["datasets"])


def axis_variants(spec: Mapping, axis: str) -> list[str]:
    return list(spec["axes"][axis].get("variants") or spec["variants"])


def protocol_value(config: Mapping, axis: str):
    """The protocol's own value of an axis's training key (where the base point sits on that axis)."""
    return protocol_training(config, config["sensitivity"]["protocol"])[axis]


def level_training(config: Mapping, axis: str, level: float) -> dict:
    """The protocol's training with ``axis`` (a training key) at ``level`` (``BASE``: unchanged), the experiment's
    epochs and no snapshots."""
    training = dict(protocol_training(config, config["sensitivity"]["protocol"]))
    if axis != BASE:
        training[axis] = int(level) if axis in INTEGER_KEYS else float(level)
    return canonical(training | {"epochs": config["sensitivity"]["epochs"], "snapshot_epochs": []})


def check(config: Mapping) -> None:
    """Sensitivity config errors the schema cannot express, each naming its key, before any job runs: every level
    must make a valid training config (steps whole and >= 1, beta > 0, finite)."""
    spec = config["sensitivity"]
    check_protocol_and_datasets(config, "sensitivity")
    defined = [v["name"] for v in config["variants"]]
    for axis in spec["run_axes"]:
        if axis not in spec["axes"]:
            raise ConfigError(f"config key sensitivity.run_axes: {axis!r} is not an axis of sensitivity.axes "
                              f"{sorted(spec['axes'])}")
    for axis, own in run_axes(spec).items():
        for dataset in axis_datasets(spec, axis):
            if dataset not in config["data"]:
                raise ConfigError(f"config key sensitivity.axes.{axis}.datasets: dataset {dataset!r} is not "
                                  f"configured under data")
        if axis not in config["training"]:
            raise ConfigError(f"config key sensitivity.axes.{axis}: {axis!r} is not a training key")
        for name in axis_variants(spec, axis):
            if name not in defined:
                raise ConfigError(f"config key sensitivity.axes.{axis}.variants: {name!r} is not in variants")
        for level in own["levels"]:
            if float(number(level)) != float(level):
                raise ConfigError(f"config key sensitivity.axes.{axis}.levels: {level!r} does not survive its folder "
                                  f"name {number(level)!r}; give at most 6 significant digits")
            if axis in INTEGER_KEYS and not (float(level).is_integer() and level >= 1):
                raise ConfigError(f"config key sensitivity.axes.{axis}.levels: {axis} is a whole number of steps "
                                  f">= 1, got {level!r}")
            if axis == "beta" and not level > 0:
                raise ConfigError(f"config key sensitivity.axes.beta.levels: beta must be > 0, got {level!r}")
            check_training(config, level_training(config, axis, level), f"config key sensitivity.axes.{axis}: "
                                                                           f"level {level}")
        if protocol_value(config, axis) in own["levels"]:
            raise ConfigError(f"config key sensitivity.axes.{axis}.levels: {protocol_value(config, axis)} is the "
                              f"protocol's own value, trained once as the base point")
    for name in spec["variants"]:
        if name not in defined:
            raise ConfigError(f"config key sensitivity.variants: {name!r} is not in variants")
    for role in ("contrast", "positive_control"):
        for arm in ("variant", "baseline"):
            if spec[role][arm] not in defined:
                raise ConfigError(f"config key sensitivity.{role}.{arm}: {spec[role][arm]!r} is not in variants")
    control = spec["positive_control"]
    if control["axis"] not in spec["run_axes"] or control["level"] not in spec["axes"][control["axis"]]["levels"]:
        raise ConfigError(f"config key sensitivity.positive_control: level {control['level']} of axis "
                          f"{control['axis']!r} is not a declared level")
    if control["dataset"] not in axis_datasets(spec, control["axis"]):
        raise ConfigError(f"config key sensitivity.positive_control.dataset: {control['dataset']!r} is not a dataset "
                          f"of axis {control['axis']!r}")
    for arm in ("variant", "baseline"):
        if control[arm] not in axis_variants(spec, control["axis"]):
            raise ConfigError(f"config key sensitivity.positive_control.{arm}: {control[arm]!r} is not trained on "
                              f"axis {control['axis']!r}")
    for criterion in spec["failure"]["criteria"]:
        if criterion not in FAILURE_CRITERIA:
            raise ConfigError(f"config key sensitivity.failure.criteria: unknown measure {criterion!r}")


def sensitivity_run(config: Mapping, dataset: str, axis: str, level: float, variant: str, seed: int,
                    training: Mapping | None = None) -> dict:
    """The effective config of one run (``training``: its level's, if already computed), tagged with its
    coordinates."""
    run = run_slice(config, dataset, variant, seed, config["sensitivity"]["protocol"],
                    training=training or level_training(config, axis, level))
    return canonical(run | {"sweep": {"name": "sensitivity", "axis": axis, "level": float(level)}})


def declared(config: Mapping) -> dict[tuple, dict]:
    """Key (dataset, axis, level, variant, seed) -> run config of every run: each axis's levels and the base point
    for the union of the variants and datasets of the axes."""
    spec = config["sensitivity"]
    cells = {(d, a, float(level), v) for a, own in run_axes(spec).items() for d in axis_datasets(spec, a)
             for level in own["levels"] for v in axis_variants(spec, a)}
    cells |= {(d, BASE, BASE_LEVEL, v) for a in spec["run_axes"] for d in axis_datasets(spec, a)
              for v in axis_variants(spec, a)}
    trainings = {(a, level): level_training(config, a, level) for _, a, level, _ in cells}
    return {(d, a, level, v, int(s)): sensitivity_run(config, d, a, level, v, s, trainings[a, level])
            for d, a, level, v in sorted(cells) for s in spec["seeds"]}


def trained_keys(config: Mapping) -> list[tuple]:
    """The runs this invocation trains (config key records.train)."""
    return to_train(config, "sensitivity", "runs", KEYS, declared(config))


def run_folder(key: tuple) -> str:
    dataset, axis, level, variant, seed = key
    return RUN.format(dataset=dataset, axis=axis, level=number(level), variant=variant, seed=seed)


def trained_here(config: Mapping) -> list[str]:
    """The run folders this invocation trains."""
    return [run_folder(key) for key in trained_keys(config)]


def run_of_folder(config: Mapping, dataset: str, axis: str, level: str, variant: str, seed: str) -> dict:
    """The run config of a run folder's wildcards (ConfigError if the config does not declare it)."""
    key = (dataset, axis, float(level), variant, int(seed))
    runs = declared(config)
    if key not in runs:
        raise ConfigError(f"sensitivity: no declared run {key}")
    return runs[key]
