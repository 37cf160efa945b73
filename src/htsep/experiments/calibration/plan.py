"""The calibration searches: their points and the run each (dataset, variant, point, seed) trains, pure functions of
the config read by the workflow to build its DAG.

EP: every protocol in config key calibration.protocols is selected from one search (calibration.search) on
calibration.dataset, trained with that protocol's reference variant. Backprop: the reference's loss and optimiser
are searched (calibration.backprop_search) on each dataset of the study, its variant named ``backprop``."""

from __future__ import annotations

from collections.abc import Mapping

from ...config import (
    BACKPROP,
    PROTOCOL_KEYS,
    ConfigError,
    backprop_slice,
    check_validation_size,
    protocol_training,
    run_slice,
    variant_by_name,
)
from ...paths import CALIBRATION
from ...searches import SEARCH_KEYS, point_name, product_points

KEYS = SEARCH_KEYS  # a run of a search
SHARD = {"runs": f"{CALIBRATION}/shard.runs.csv"}  # this invocation's search runs
SEARCH_KEY = {"ep": "search", "backprop": "backprop_search"}  # kind of search -> its config key


def check(config: Mapping) -> None:
    """Calibration config errors the schema cannot express, each naming its key."""
    calibration = config["calibration"]
    where = "config key calibration"
    for dataset in dict.fromkeys([calibration["dataset"], *backprop_datasets(config)]):  # config order
        if dataset not in config["data"]:
            raise ConfigError(f"{where}: dataset {dataset!r} is not configured under data")
        check_validation_size(config, dataset)  # the split the pipeline carves
    for protocol, variant in calibration["protocols"].items():
        if protocol == BACKPROP:
            raise ConfigError(f"{where}.protocols.{BACKPROP}: the name is reserved for the backprop reference")
        variant_by_name(config, variant)
    for kind, key in SEARCH_KEY.items():
        search = calibration[key]
        if not search or any(len(values) == 0 for values in search.values()):
            raise ConfigError(f"{where}.{key}: the search space is empty; give each key at least one value")
        if kind == "ep":
            for name in search:
                if name not in PROTOCOL_KEYS:
                    raise ConfigError(f"{where}.search.{name}: searchable keys are {', '.join(PROTOCOL_KEYS)}")
    for point in search_points(config, "ep").values():
        protocol_training(config, f"calibration point {point_name(point)}", point)


def backprop_datasets(config: Mapping) -> list[str]:
    """The datasets the backprop reference is searched on (config key calibration.backprop_datasets, null: all)."""
    return config["calibration"]["backprop_datasets"] or list(config["datasets"])


def search_points(config: Mapping, kind: str) -> dict[str, dict]:
    """Point name -> values of the ``kind`` ('ep' or 'backprop') search, the product of its value lists in declared
    order."""
    return product_points(config["calibration"][SEARCH_KEY[kind]])


def searches(config: Mapping) -> list[tuple[str, str, str]]:
    """Every (kind, dataset, variant) searched: one EP search per reference variant of the protocols it selects,
    one backprop search per dataset."""
    ep = dict.fromkeys(config["calibration"]["protocols"].values())  # protocols may share a reference
    return ([("ep", config["calibration"]["dataset"], v) for v in ep]
            + [("backprop", d, BACKPROP) for d in backprop_datasets(config)])


def calibration_run(config: Mapping, dataset: str, variant: str, point: str, seed: int) -> dict:
    """The run one (dataset, variant, search point, seed) trains, tagged with its kind and point."""
    kind = "backprop" if variant == BACKPROP else "ep"
    values = search_points(config, kind)[point]
    if kind == "backprop":
        run = backprop_slice(config, dataset, seed, values)
    else:
        run = run_slice(config, dataset, variant, seed, training={**config["training"], **values})
    return run | {"sweep": {"name": "calibration", "kind": kind, "point": point}}


def declared(config: Mapping) -> dict[tuple, dict]:
    """Key (dataset, variant, point, seed) -> run config of every run of the declared searches."""
    return {(dataset, variant, point, int(seed)): calibration_run(config, dataset, variant, point, seed)
            for kind, dataset, variant in searches(config) for point in search_points(config, kind)
            for seed in config["calibration"]["seeds"]}
