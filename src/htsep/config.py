"""Study configuration: load, validate, and cut each job's own slice of it.

The slices returned here are what the workflow passes as ``params:``, so a job reruns exactly when its own
part of the configuration changes.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path

import jsonschema
import yaml

from .timesteps import TimeStepSpecError, layer_specs

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = REPO_ROOT / "config" / "schema.yaml"
N_PIXELS, N_CLASSES = 28 * 28, 10


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


def validate_schema(config: dict, schema_path: Path = SCHEMA_PATH) -> None:
    """JSON-schema validation with defaults filled in, the error naming the offending key."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator_cls = jsonschema.validators.validator_for(schema)

    def set_defaults(validator, properties, instance, schema):
        for key, sub in properties.items():
            if isinstance(instance, dict) and "default" in sub:
                instance.setdefault(key, copy.deepcopy(sub["default"]))
        yield from validator_cls.VALIDATORS["properties"](validator, properties, instance, schema)

    filling = jsonschema.validators.extend(validator_cls, {"properties": set_defaults})
    error = jsonschema.exceptions.best_match(filling(schema).iter_errors(config))
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
    """What preparing ``dataset`` depends on."""
    data = config["data"]
    return canonical({"name": dataset, "mirror": data.get("mirror"), "subset": data.get("subset"), **data[dataset]})


def variant_by_name(config: Mapping, name: str) -> dict:
    for variant in config["variants"]:
        if variant["name"] == name:
            return variant
    raise ConfigError(f"variant {name!r} is not in config key variants {[v['name'] for v in config['variants']]}")


def run_slice(config: Mapping, dataset: str, variant: str, seed: int) -> dict:
    """Everything one training run depends on (its effective config)."""
    return canonical({
        "dataset": {k: v for k, v in data_slice(config, dataset).items() if k != "mirror"},  # where, not what
        "variant": variant_by_name(config, variant),
        "seed": int(seed),
        "model": {"sizes": [N_PIXELS, *config["model"]["hidden"], N_CLASSES],
                  "activation": config["model"].get("activation", "hard_sigmoid")},
        "training": config["training"],
    })
