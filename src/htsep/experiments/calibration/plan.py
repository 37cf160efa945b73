"""The calibration search: its points and the run each (kind, point, seed) trains, pure functions of the config
read by the workflow to build its DAG."""

from __future__ import annotations

from collections.abc import Mapping
from itertools import product

from ...config import (
    PROTOCOL_KEYS,
    ConfigError,
    backprop_slice,
    check_validation_size,
    protocol_training,
    run_slice,
    variant_by_name,
)
from ...paths import CALIBRATION, number


def check(config: Mapping) -> None:
    """Calibration config errors the schema cannot express, each naming its key."""
    calibration = config["calibration"]
    where = "config key calibration"
    if calibration["dataset"] not in config["data"]:
        raise ConfigError(f"{where}.dataset: {calibration['dataset']!r} is not configured under data")
    check_validation_size(config, calibration["dataset"])  # the split the pipeline carves
    variant_by_name(config, calibration["variant"])
    for key, search in (("search", calibration["search"]), ("backprop_search", calibration["backprop_search"])):
        if not search or any(len(values) == 0 for values in search.values()):
            raise ConfigError(f"{where}.{key}: the search space is empty; give each key at least one value")
    for key in calibration["search"]:
        if key not in PROTOCOL_KEYS:
            raise ConfigError(f"{where}.search.{key}: searchable keys are {', '.join(PROTOCOL_KEYS)}")
    for point in calibration_points(config):
        protocol_training(config, f"calibration point {point_name(point)}", point)
    if len(list(product(*calibration["backprop_search"].values()))) > len(calibration_points(config)):
        raise ConfigError(f"{where}.backprop_search: larger than the EP search ({len(calibration_points(config))} "
                          f"points); the reference may not be tuned harder than EP")


KEYS = ["kind", "point", "seed"]  # a run of the search
SHARD = {"runs": f"{CALIBRATION}/shard.runs.csv"}  # this invocation's search runs
CALIBRATED = {"ep": "search", "backprop": "backprop_search"}  # what calibration selects -> its search key


def calibration_points(config: Mapping, search_key: str = "search") -> list[dict]:
    """Every point of a calibration search (the product of its value lists, in declared order)."""
    search = config["calibration"][search_key]
    return [dict(zip(search, values, strict=True)) for values in product(*search.values())]


def search_points(config: Mapping, kind: str) -> dict[str, dict]:
    """Point name -> values of the search that calibrates ``kind`` ('ep' or 'backprop'), in search order."""
    return {point_name(p): p for p in calibration_points(config, CALIBRATED[kind])}


def calibration_run(config: Mapping, kind: str, point: str, seed: int) -> dict:
    """The run one (kind, search point, seed) of the calibration trains, tagged with its kind and point."""
    calibration, values = config["calibration"], search_points(config, kind)[point]
    if kind == "backprop":
        run = backprop_slice(config, calibration["dataset"], seed, values)
    else:
        run = run_slice(config, calibration["dataset"], calibration["variant"], seed,
                        training={**config["training"], **values})
    return run | {"sweep": {"name": "calibration", "kind": kind, "point": point}}


def point_name(point: Mapping) -> str:
    """A path-safe name of a search point, e.g. 'beta0.5_momentum0_lr0.1-0.05'."""
    def text(value):
        if isinstance(value, list | tuple):
            return "-".join(text(v) for v in value)
        return number(value) if isinstance(value, float) else str(value)
    return "_".join(f"{key}{text(value)}" for key, value in point.items())


def declared(config: Mapping) -> dict[tuple, dict]:
    """Key (kind, point, seed) -> run config of every run of the declared search."""
    return {(kind, point, int(seed)): calibration_run(config, kind, point, seed)
            for kind in CALIBRATED for point in search_points(config, kind) for seed in config["calibration"]["seeds"]}
