"""Study configuration: load, validate, and cut each job's own slice of it.

The slices returned here are what the workflow passes as ``params:``, so a job reruns exactly when its own
part of the configuration changes.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import jsonschema
import yaml

from .ep.timesteps import TimeStepSpecError, layer_specs

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = REPO_ROOT / "config" / "schema.yaml"
N_PIXELS, N_CLASSES = 28 * 28, 10
BACKPROP = "backprop"  # protocol and variant name of the backprop reference runs
PROTOCOL_KEYS = ("lr", "momentum", "weight_decay", "beta", "symmetric", "free_steps", "nudged_steps", "loss")
# Smallest class of each official split (MNIST's digit 5 has 5,421 training and digit 5 892 test images).
TRAIN_PER_CLASS = {"mnist": 5421, "kmnist": 6000, "fashion_mnist": 6000}
TEST_PER_CLASS = {"mnist": 892, "kmnist": 1000, "fashion_mnist": 1000}


DATASET_LABELS = {"mnist": "MNIST", "kmnist": "KMNIST", "fashion_mnist": "Fashion-MNIST", "synthetic": "Synthetic"}


def dataset_label(name: str, split: str = "official") -> str:
    """Display name, e.g. ``"Fashion-MNIST"`` or ``"KMNIST (test-set holdout)"``."""
    label = DATASET_LABELS[name]
    return f"{label} (test-set holdout)" if split == "test-holdout" else label


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


def check_common(config: Mapping) -> None:
    """Checks of the keys every experiment shares that the schema cannot express: dt specs usable, one learning
    rate per layer, datasets and protocols configured (each experiment checks its own section: htsep.study)."""
    check_finite(config, "")
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
    for name in config["grid"]["variants"]:
        if name not in names:
            raise ConfigError(f"config key grid.variants: {name!r} is not in variants {names}")
    if len(config["training"]["lr"]) != n_layers:
        raise ConfigError(f"config key training.lr: need one learning rate per layer ({n_layers} for hidden "
                          f"{config['model']['hidden']}), got {len(config['training']['lr'])}")
    for name in config["datasets"]:
        if name not in config["data"]:
            raise ConfigError(f"config key data.{name}: dataset {name!r} is listed in datasets but not configured")
        check_subset(config, name)
    for name, overrides in config["protocols"].items():
        if name == BACKPROP:
            raise ConfigError(f"config key protocols.{BACKPROP}: the name is reserved for the backprop reference")
        protocol_training(config, name, overrides)
    missing = [d for d in config["datasets"] if config["backprop"] is not None and d not in config["backprop"]]
    if missing:
        raise ConfigError(f"config key backprop: no setting for dataset(s) {missing}; the reference is selected per "
                          f"dataset (snakemake calibrate), or set backprop: null")
    for name in config["run_protocols"]:
        if name not in config["protocols"]:
            raise ConfigError(f"config key run_protocols: protocol {name!r} is not defined under protocols "
                              f"(defined: {sorted(config['protocols'])})")


def train_per_class(config: Mapping, dataset: str, subset: bool = True) -> int:
    """Training images in the smallest class of ``dataset`` as configured (split and, with ``subset``, data.subset)."""
    data = config["data"][dataset]
    if dataset == "synthetic":
        n = data.get("n_train", 2000) // N_CLASSES  # labels are arange(n) % 10, permuted
    elif data.get("split", "official") == "test-holdout":
        n = TEST_PER_CLASS[dataset] - round(data.get("holdout_fraction", 0.2) * TEST_PER_CLASS[dataset])
    else:
        n = TRAIN_PER_CLASS[dataset]
    return min(n, config["data"].get("subset") or n) if subset else n


def check_subset(config: Mapping, dataset: str) -> None:
    """data.subset (first N training images per class) is no larger than the smallest class of ``dataset``, so that
    a prepared dataset is never replaced by a failing one."""
    subset, available = config["data"].get("subset"), train_per_class(config, dataset, subset=False)
    if subset is not None and subset > available:
        split = config["data"][dataset].get("split", "official")
        raise ConfigError(f"config key data.subset: {subset} training images per class, but {dataset} has "
                          f"{available} in its smallest class (split {split}); use at most {available}")


def check_protocol_and_datasets(config: Mapping, section: str) -> None:
    """An experiment section's ``protocol`` is defined under protocols and each of its ``datasets`` under data."""
    spec = config[section]
    if spec["protocol"] not in config["protocols"]:
        raise ConfigError(f"config key {section}.protocol: {spec['protocol']!r} is not defined under protocols "
                          f"{sorted(config['protocols'])}")
    for dataset in spec["datasets"]:
        if dataset not in config["data"]:
            raise ConfigError(f"config key {section}.datasets: dataset {dataset!r} is not configured under data")


def check_validation_size(config: Mapping, dataset: str) -> None:
    """The validation split of ``dataset`` leaves at least as many training images per class as it takes."""
    check_subset(config, dataset)
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
    check_training(config, training, f"protocol {name}", lr_key=f"protocols.{name}.lr")
    return training


def check_training(config: Mapping, training: Mapping, where: str, lr_key: str = "training.lr") -> None:
    """The checks of config key ``training`` for another training config (a protocol, a search point, a stress
    level): schema, finite numbers, one learning rate per layer (``lr_key`` names where the list came from);
    ConfigError prefixed with ``where``."""
    try:
        validate_schema({**config, "training": training})
        check_finite(training, "training")
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None
    n_layers = len(config["model"]["hidden"]) + 1
    if len(training["lr"]) != n_layers:
        raise ConfigError(f"{where}: config key {lr_key}: need one learning rate per layer ({n_layers}), got "
                          f"{len(training['lr'])}")


def check_finite(value, where: str) -> None:
    """ConfigError naming the first number in ``value`` (nested mappings and lists) that is NaN or infinite."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            check_finite(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            check_finite(item, f"{where}.{i}")
    elif isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"config key {where}: {value} is not a finite number")


def read_config(paths, schema_path: Path = SCHEMA_PATH) -> dict:
    """Read and merge YAML files in order, then validate against the schema (defaults filled in); raises
    ConfigError naming the bad key (htsep.study.load_config also runs every experiment's checks)."""
    config: dict = {}
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            deep_update(config, yaml.safe_load(path.read_text()) or {})
        except yaml.YAMLError as err:
            raise ConfigError(f"config file {path} is not valid YAML: {' '.join(str(err).split())}") from None
    validate_schema(config, schema_path)
    return config


def canonical(obj):
    """A deep copy with mapping keys sorted, so equal configs compare (and serialise) equal in any key order."""
    if isinstance(obj, Mapping):
        return {key: canonical(obj[key]) for key in sorted(obj)}
    if isinstance(obj, list | tuple):
        return [canonical(item) for item in obj]
    return obj


# ---------------------------------------------------------------------------------------------------- slices
# What each job's params carry of the config (its rerun trigger): every slice is defined here.


@functools.cache
def _schema_properties(schema_path: Path = SCHEMA_PATH) -> dict:
    return yaml.safe_load(Path(schema_path).read_text())["properties"]


def schema_defaults(section: str) -> dict:
    """The schema's default of every key of a config section (e.g. 'analysis'), for callers given a part of it."""
    return {key: copy.deepcopy(spec["default"]) for key, spec in _schema_properties()[section]["properties"].items()
            if "default" in spec}


def data_slice(config: Mapping, dataset: str) -> dict:
    """What preparing ``dataset`` depends on (not its validation split: see validation_slice)."""
    data = config["data"]
    own = {k: v for k, v in data[dataset].items() if k != "validation_per_class"}
    return canonical({"name": dataset, "mirror": data.get("mirror"), "subset": data.get("subset"), **own})


def validation_slice(config: Mapping, dataset: str) -> dict:
    """What the validation split of ``dataset`` depends on, besides its prepared training set."""
    return {"per_class": config["data"][dataset].get("validation_per_class", 500),
            "seed": config["data"].get("validation_seed", 0)}


def variant_definitions(config: Mapping) -> list[dict]:
    """Every defined variant's name and dt (what figures and paper parts label and order by; not its provenance,
    so that a provenance edit redraws nothing)."""
    return [{k: v for k, v in variant.items() if k in ("name", "dt")} for variant in config["variants"]]


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
        "variant": {k: v for k, v in variant_by_name(config, variant).items() if k in ("name", "dt")},  # not provenance
        "seed": int(seed),
        "model": model_slice(config),
        "training": training,
    }
    return canonical(run | ({"protocol": protocol} if protocol else {}))


def backprop_slice(config: Mapping, dataset: str, seed: int, setting: Mapping | None = None) -> dict:
    """What one backprop reference run depends on: the EP grid's data, network, init seed, epochs and batch, with
    the loss and optimiser of ``setting`` (default: the dataset's under config key backprop); its protocol is
    ``backprop``."""
    training = config["training"]
    shared = {k: training[k] for k in ("epochs", "batch_size", "eval_batch_size", "device", "threads")}
    return canonical({
        "protocol": BACKPROP,
        "dataset": {k: v for k, v in data_slice(config, dataset).items() if k != "mirror"},
        "seed": int(seed),
        "model": model_slice(config),
        "training": shared | {"weight_decay": 0.0} | dict(setting or config["backprop"][dataset]),
    })


def section_slice(config: Mapping, section: str, keys: Sequence[str] | None = None) -> dict:
    """Config section ``section`` (e.g. the analysis settings), or its ``keys`` only."""
    return {k: config[section][k] for k in keys or config[section]}


def paper_slice(config: Mapping) -> dict:
    """What the grid's part of the paper shows of the config: datasets and their data settings, variants, seeds,
    model, training (not where or how fast it ran) and the protocols the grid trains."""
    return {
        "datasets": config["datasets"],
        "data": {"subset": config["data"].get("subset"), **{name: config["data"][name] for name in config["datasets"]}},
        "variants": [variant_by_name(config, name) for name in config["grid"]["variants"]],
        "seeds": config["grid"]["seeds"],
        "model": config["model"],
        "training": {k: v for k, v in config["training"].items() if k not in ("device", "threads", "eval_batch_size")},
        "protocols": {name: config["protocols"][name] for name in config["run_protocols"]},
        "run_protocols": config["run_protocols"],
    }


WRITTEN_TEXTS = ("prediction", "outcome", "extension")  # prose quoted in the paper, drawn by no figure


def without_texts(part):
    """``part`` (a config section, list or value) without the prose keys of WRITTEN_TEXTS at any depth: a figure's
    params, which judging an outcome or amending a prediction must not make stale."""
    if isinstance(part, Mapping):
        return {k: without_texts(v) for k, v in part.items() if k not in WRITTEN_TEXTS}
    if isinstance(part, list):
        return [without_texts(v) for v in part]
    return part


# The config parts a figure can ask for, by the keyword its plotting function takes (htsep.report.figures).
FIGURE_SETTINGS: dict[str, Callable[[Mapping], object]] = {
    "datasets": lambda config: config["datasets"],
    "variants": lambda config: variant_definitions(config),
    "analysis": lambda config: config["analysis"],
    "free_steps": lambda config: config["training"]["free_steps"],
    "spectral": lambda config: config["mechanism"]["spectral"],
    "landscape": lambda config: config["mechanism"]["landscape"],
    "frontier": lambda config: without_texts(config["frontier"]),
    "calibration": lambda config: config["calibration"],
    "preregistration": lambda config: config["preregistration"],
    "factorial": lambda config: config["factorial"],
}


def figure_slice(config: Mapping, settings: Sequence[str]) -> dict:
    """The config parts named in ``settings`` (keys of FIGURE_SETTINGS)."""
    return {name: FIGURE_SETTINGS[name](config) for name in settings}
