"""Study configuration: load, validate, and cut each job's own slice of it.

The slices returned here are what the workflow passes as ``params:``, so a job reruns exactly when its own
part of the configuration changes.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from itertools import product
from pathlib import Path

import jsonschema
import yaml

from .timesteps import TimeStepSpecError, layer_specs

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = REPO_ROOT / "config" / "schema.yaml"
N_PIXELS, N_CLASSES = 28 * 28, 10
BACKPROP = "backprop"  # protocol and variant name of the backprop reference runs
FAILURE_CRITERIA = ("diverged", "chance", "never_predicted", "collapse")  # htsep.outcomes.onsets
SHARD_KEYS = ("datasets", "axes", "levels", "seeds")
PROTOCOL_KEYS = ("lr", "momentum", "weight_decay", "beta", "symmetric", "free_steps", "nudged_steps", "loss")
# Smallest class of each official split (MNIST's digit 5 has 5,421 training and digit 5 892 test images).
TRAIN_PER_CLASS = {"mnist": 5421, "kmnist": 6000, "fashion_mnist": 6000}
TEST_PER_CLASS = {"mnist": 892, "kmnist": 1000, "fashion_mnist": 1000}


class ConfigError(ValueError):
    """A configuration that names an unusable value; the message names the key."""


def deep_update(base: dict, other: Mapping) -> dict:
    """Merge ``other`` into ``base`` recursively (later config files override earlier ones, like Snakemake)."""
    for key, value in other.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


@functools.cache
def _filling_validator(schema_path: Path):
    """A validator of the schema at ``schema_path`` that fills in its defaults (built once per schema file)."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator_cls = jsonschema.validators.validator_for(schema)

    def set_defaults(validator, properties, instance, schema):
        for key, sub in properties.items():
            if isinstance(instance, dict) and "default" in sub:
                instance.setdefault(key, copy.deepcopy(sub["default"]))
        yield from validator_cls.VALIDATORS["properties"](validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_cls, {"properties": set_defaults})(schema)


def validate_schema(config: dict, schema_path: Path = SCHEMA_PATH) -> None:
    """JSON-schema validation with defaults filled in, the error naming the offending key."""
    error = jsonschema.exceptions.best_match(_filling_validator(Path(schema_path)).iter_errors(config))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        raise ConfigError(f"config key {where}: {error.message}")


def check_config(config: Mapping) -> None:
    """Checks the schema cannot express: dt specs usable, one learning rate per layer, datasets configured."""
    n_layers = len(config["model"]["hidden"]) + 1
    names = [v["name"] for v in config["variants"]]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ConfigError(f"config key variants: names must be unique, {duplicated} appear more than once")
    for variant in config["variants"]:
        name = variant["name"]
        try:
            layer_specs(variant["dt"], n_layers, where=f"variants.{name}.dt")
        except TimeStepSpecError as err:
            raise ConfigError(f"config key {err}") from None
    if len(config["training"]["lr"]) != n_layers:
        raise ConfigError(f"config key training.lr: need one learning rate per layer ({n_layers} for hidden "
                          f"{config['model']['hidden']}), got {len(config['training']['lr'])}")
    for name in config["datasets"]:
        if name not in config["data"]:
            raise ConfigError(f"config key data.{name}: dataset {name!r} is listed in datasets but not configured")
    for name, overrides in config["protocols"].items():
        if name == BACKPROP:
            raise ConfigError(f"config key protocols.{BACKPROP}: the name is reserved for the backprop reference")
        protocol_training(config, name, overrides)
    for name in config["run_protocols"]:
        if name not in config["protocols"]:
            raise ConfigError(f"config key run_protocols: protocol {name!r} is not defined under protocols "
                              f"(defined: {sorted(config['protocols'])})")
    check_calibration(config)
    check_frontier(config)
    spectral = config.get("mechanism", {}).get("spectral", {}).get("protocol", "lab")
    if spectral not in config["run_protocols"]:
        raise ConfigError(f"config key mechanism.spectral.protocol: {spectral!r} is not in run_protocols "
                          f"{config['run_protocols']}")


def check_frontier(config: Mapping) -> None:
    """Frontier config errors the schema cannot express, each naming its key."""
    spec = config["frontier"]
    defined = [v["name"] for v in config["variants"]]
    for name in spec["variants"]:
        if name not in defined:
            raise ConfigError(f"config key frontier.variants: {name!r} is not in variants {defined}")
    if spec["protocol"] not in config["protocols"]:
        raise ConfigError(f"config key frontier.protocol: {spec['protocol']!r} is not defined under protocols "
                          f"{sorted(config['protocols'])}")
    for dataset in spec["datasets"]:
        if dataset not in config["data"]:
            raise ConfigError(f"config key frontier.datasets: dataset {dataset!r} is not configured in data")
    for name, axis in spec["axes"].items():
        for dataset in spec["datasets"]:
            levels = axis_levels(spec, name, dataset)
            if len(levels) < 2:
                raise ConfigError(f"config key frontier.axes.{name}.levels: a stress axis needs at least two levels, "
                                  f"got {levels} for {dataset}")
        if axis["key"] not in config["training"]:
            raise ConfigError(f"config key frontier.axes.{name}.key: {axis['key']!r} is not a training key")
    for name in spec["run_axes"]:
        if name not in spec["axes"]:
            raise ConfigError(f"config key frontier.run_axes: {name!r} is not an axis of frontier.axes "
                              f"{sorted(spec['axes'])}")
    for criterion in spec["failure"]["criteria"]:
        if criterion not in FAILURE_CRITERIA:
            raise ConfigError(f"config key frontier.failure.criteria: unknown measure {criterion!r} "
                              f"(known: {', '.join(FAILURE_CRITERIA)})")
    shard = shard_spec(config)
    for key, where in (("datasets", "datasets"), ("axes", "run_axes")):
        for name in shard[key]:
            if name not in spec[where]:
                raise ConfigError(f"config key frontier_shard.{key}: {name!r} is not in frontier.{where} "
                                  f"{spec[where]}")
    for axis in shard["axes"]:
        for dataset in shard["datasets"]:
            levels = axis_levels(spec, axis, dataset)
            for level in shard["levels"] or []:
                if level not in levels:
                    raise ConfigError(f"config key frontier_shard.levels: {level} is not a level of axis {axis} on "
                                      f"{dataset} {levels}")
    start, stop = shard["seeds"]
    if not 0 <= start < stop:
        raise ConfigError(f"config key frontier_shard.seeds: need [first, stop) with 0 <= first < stop, got "
                          f"{shard['seeds']}")


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
    axis in run_axes, every level, seeds [0, frontier.seeds); an empty list of datasets or axes trains nothing, so
    the analysis reads the committed shards only) and its numbers as numbers (``snakemake --config``
    passes nested values as strings)."""
    spec, shard = config["frontier"], dict(config.get("frontier_shard") or {})
    unknown = sorted(set(shard) - set(SHARD_KEYS))
    if unknown:
        raise ConfigError(f"config key frontier_shard: unknown keys {unknown} (known: {', '.join(SHARD_KEYS)})")
    levels = shard.get("levels")
    return {"datasets": list(spec["datasets"]) if shard.get("datasets") is None else list(shard["datasets"]),
            "axes": list(spec["run_axes"]) if shard.get("axes") is None else list(shard["axes"]),
            "levels": [float(level) for level in levels] if levels else None,
            "seeds": [int(seed) for seed in shard.get("seeds") or [0, spec["seeds"]]]}


def train_per_class(config: Mapping, dataset: str) -> int:
    """Training images in the smallest class of ``dataset`` as configured (split, subset)."""
    data = config["data"][dataset]
    if dataset == "synthetic":
        n = data.get("n_train", 2000) // N_CLASSES  # labels are arange(n) % 10, permuted
    elif data.get("split", "official") == "test-holdout":
        n = TEST_PER_CLASS[dataset] - round(data.get("holdout_fraction", 0.2) * TEST_PER_CLASS[dataset])
    else:
        n = TRAIN_PER_CLASS[dataset]
    return min(n, config["data"].get("subset") or n)


def check_validation_size(config: Mapping, dataset: str) -> None:
    taken = config["data"][dataset].get("validation_per_class", 500)
    available = train_per_class(config, dataset)
    if available - taken < taken:
        raise ConfigError(f"config key data.{dataset}.validation_per_class: {taken} per class would leave fewer "
                          f"training images per class than it takes ({dataset} has {available} in its smallest "
                          f"class as configured); use at most {available // 2}")


def protocol_training(config: Mapping, name: str, overrides: Mapping | None = None) -> dict:
    """The training config of protocol ``name``: config training with the protocol's overrides."""
    if overrides is None:
        if name not in config["protocols"]:
            raise ConfigError(f"unknown protocol {name!r}: config key protocols defines {sorted(config['protocols'])}")
        overrides = config["protocols"][name]
    for key in overrides:
        if key not in config["training"]:
            raise ConfigError(f"config key protocols.{name}.{key}: {key!r} is not a training key")
        if key not in PROTOCOL_KEYS:
            raise ConfigError(f"config key protocols.{name}.{key}: a protocol overrides only {', '.join(PROTOCOL_KEYS)}"
                              f" (data, sizes, epochs and batch stay shared)")
    training = deep_update(copy.deepcopy(dict(config["training"])), overrides)
    try:
        validate_schema({**config, "training": training})
    except ConfigError as err:
        raise ConfigError(f"protocol {name}: {err}") from None
    n_layers = len(config["model"]["hidden"]) + 1
    if len(training["lr"]) != n_layers:
        raise ConfigError(f"config key protocols.{name}.lr: need one learning rate per layer ({n_layers}), got "
                          f"{len(training['lr'])}")
    return training


def check_calibration(config: Mapping) -> None:
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


CALIBRATED = {"ep": "search", "backprop": "backprop_search"}  # what calibration selects -> its search key


def calibration_points(config: Mapping, search_key: str = "search") -> list[dict]:
    """Every point of a calibration search (the product of its value lists, in declared order)."""
    search = config["calibration"][search_key]
    return [dict(zip(search, values, strict=True)) for values in product(*search.values())]


def search_points(config: Mapping, kind: str) -> dict[str, dict]:
    """Point name -> values of the search that calibrates ``kind`` ('ep' or 'backprop'), in search order."""
    return {point_name(p): p for p in calibration_points(config, CALIBRATED[kind])}


def calibration_run(config: Mapping, kind: str, point: str, seed: int) -> dict:
    """The run one (kind, search point, seed) of the calibration trains."""
    calibration, values = config["calibration"], search_points(config, kind)[point]
    if kind == "backprop":
        return backprop_slice(config, calibration["dataset"], seed, values)
    return run_slice(config, calibration["dataset"], calibration["variant"], seed,
                     training={**config["training"], **values})


def point_name(point: Mapping) -> str:
    """A path-safe name of a search point, e.g. 'beta0.5_momentum0_lr0.1-0.05'."""
    def text(value):
        if isinstance(value, list | tuple):
            return "-".join(text(v) for v in value)
        return f"{value:g}" if isinstance(value, float) else str(value)
    return "_".join(f"{key}{text(value)}" for key, value in point.items())


def load_config(paths, schema_path: Path = SCHEMA_PATH) -> dict:
    """Read and merge YAML files in order, then validate; raises ConfigError naming the bad key."""
    config: dict = {}
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        deep_update(config, yaml.safe_load(path.read_text()) or {})
    validate_schema(config, schema_path)
    check_config(config)
    return config


def canonical(obj):
    """A deep copy with mapping keys sorted, so equal configs compare (and serialise) equal in any key order."""
    if isinstance(obj, Mapping):
        return {key: canonical(obj[key]) for key in sorted(obj)}
    if isinstance(obj, list | tuple):
        return [canonical(item) for item in obj]
    return obj


def data_slice(config: Mapping, dataset: str) -> dict:
    """What preparing ``dataset`` depends on (not its validation split: see validation_slice)."""
    data = config["data"]
    own = {k: v for k, v in data[dataset].items() if k != "validation_per_class"}
    return canonical({"name": dataset, "mirror": data.get("mirror"), "subset": data.get("subset"), **own})


def validation_slice(config: Mapping, dataset: str) -> dict:
    """What the validation split of ``dataset`` depends on, besides its prepared training set."""
    return {"per_class": config["data"][dataset].get("validation_per_class", 500),
            "seed": config["data"].get("validation_seed", 0)}


def variant_by_name(config: Mapping, name: str) -> dict:
    for variant in config["variants"]:
        if variant["name"] == name:
            return variant
    raise ConfigError(f"variant {name!r} is not in config key variants {[v['name'] for v in config['variants']]}")


def model_slice(config: Mapping) -> dict:
    return {"sizes": [N_PIXELS, *config["model"]["hidden"], N_CLASSES],
            "activation": config["model"].get("activation", "hard_sigmoid")}


def run_slice(config: Mapping, dataset: str, variant: str, seed: int, protocol: str | None = None,
              training: Mapping | None = None) -> dict:
    """Everything one training run depends on (its effective config). With ``protocol`` the run trains under
    that protocol (and carries its name); ``training`` replaces the training config (calibration points)."""
    if training is None:
        training = config["training"] if protocol is None else protocol_training(config, protocol)
    run = {
        "dataset": {k: v for k, v in data_slice(config, dataset).items() if k != "mirror"},  # where, not what
        "variant": variant_by_name(config, variant),
        "seed": int(seed),
        "model": model_slice(config),
        "training": training,
    }
    return canonical(run | ({"protocol": protocol} if protocol else {}))


def backprop_slice(config: Mapping, dataset: str, seed: int, setting: Mapping | None = None) -> dict:
    """What one backprop reference run depends on: the EP grid's data, network, init seed, epochs and batch, with
    the loss and optimiser of ``setting`` (default: config key backprop)."""
    training = config["training"]
    shared = {k: training[k] for k in ("epochs", "batch_size", "eval_batch_size", "device", "threads")}
    return canonical({
        "dataset": {k: v for k, v in data_slice(config, dataset).items() if k != "mirror"},
        "seed": int(seed),
        "model": model_slice(config),
        "training": shared | {"weight_decay": 0.0} | dict(setting or config["backprop"]),
    })
