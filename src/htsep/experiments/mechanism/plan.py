"""Which runs the mechanism experiments need: pure functions of the config, read by the workflow to build its DAG.

- ``spectral_runs``: the grid runs whose trained weights the spectral experiment reads
  (``htsep.experiments.mechanism.spectra``);
- ``landscape_plan``: short runs over a grid of dt mean x spread, one stacked training job per dt mean
  (the stability frontier's runs are planned by ``htsep.experiments.frontier.plan``).

Each run of a sweep gets its own effective config (``sweep_run``), trained by ``htsep.training.sweeps``.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence

from ...config import ConfigError, canonical, check_subset, deep_update, protocol_training, run_slice, train_per_class
from ...ep.timesteps import TimeStepSpecError, validate_spec
from ...paths import LANDSCAPE, MECHANISM, number

log = logging.getLogger(__name__)

SPECTRAL_SHARD = {table: f"{MECHANISM}/shard.{table}.csv" for table in ("spectral_runs", "spectral", "hist")}
LANDSCAPE_SHARD = {"landscape": f"{MECHANISM}/shard.landscape.csv"}

def check(config: Mapping) -> None:
    """Mechanism config errors the schema cannot express, each naming its key."""
    spectral = config.get("mechanism", {}).get("spectral", {}).get("protocol", "lab")
    if spectral not in config["run_protocols"]:
        raise ConfigError(f"config key mechanism.spectral.protocol: {spectral!r} is not in run_protocols "
                          f"{config['run_protocols']}")
    landscape = config["mechanism"]["landscape"]
    if landscape["dataset"] in config["data"]:
        check_subset(config, landscape["dataset"])
        available = train_per_class(config, landscape["dataset"])
        if (landscape.get("train_subset") or 0) > available:
            raise ConfigError(f"config key mechanism.landscape.train_subset: {landscape['train_subset']} per class, "
                              f"but {landscape['dataset']} has {available} in its smallest class as configured")


def _present_variants(config: Mapping, names: Sequence[str], key: str) -> list[str]:
    """The variants of ``names`` that the grid trains (others are left out with a warning, so that a grid without
    them still runs its other targets); ConfigError naming config key ``key`` if none is left."""
    trained = config["grid"]["variants"]
    missing = [n for n in names if n not in trained]
    if missing:
        log.warning("config key %s: %s are not in grid.variants %s and are left out", key, missing, trained)
    present = [n for n in names if n in trained]
    if not present:
        raise ConfigError(f"config key {key}: none of {list(names)} is in grid.variants {trained}")
    return present


def spectral_runs(config: Mapping) -> list[tuple[str, str, int]]:
    """(dataset, variant, seed) of every grid run the spectral experiment reads."""
    spec = config["mechanism"]["spectral"]
    variants = _present_variants(config, spec["variants"], "mechanism.spectral.variants")
    for dataset in spec["datasets"]:
        if dataset not in config["data"]:
            raise ConfigError(f"config key mechanism.spectral.datasets: dataset {dataset!r} is not configured in data")
    seeds = config["grid"]["seeds"] if spec["seeds"] is None else spec["seeds"]
    outside = sorted(set(seeds) - set(config["grid"]["seeds"]))
    if outside:
        raise ConfigError(f"config key mechanism.spectral.seeds: {outside} are not in grid.seeds (the spectra read "
                          f"the grid's trained runs)")
    return [(d, v, int(s)) for d in spec["datasets"] for v in variants for s in seeds]


def sweep_run(config: Mapping, sweep: Mapping, variant: Mapping, seed: int, tag: Mapping) -> dict:
    """The effective config of one run of a sweep: the grid's run config with the sweep's dataset subset,
    training overrides and epochs, and ``tag`` (the sweep coordinates) as ``sweep``."""
    dataset = sweep["dataset"]
    if dataset not in config["data"]:
        raise ConfigError(f"config key mechanism: dataset {dataset!r} is not configured in data")
    unknown = sorted(set(sweep.get("training") or {}) - set(config["training"]))
    if unknown:
        raise ConfigError(f"config key mechanism training overrides: unknown training keys {unknown}")
    try:
        validate_spec(variant["dt"], where=f"mechanism variant {variant['name']}.dt")
    except TimeStepSpecError as err:
        raise ConfigError(f"config key {err}") from None
    run = run_slice(config, dataset, config["variants"][0]["name"], seed)
    training = deep_update(copy.deepcopy(config["training"]), sweep.get("training") or {})
    training |= {"epochs": sweep["epochs"], "snapshot_epochs": []}
    run["training"] = canonical(training)
    run["variant"] = canonical(dict(variant))
    run["dataset"] = canonical({**run["dataset"], "train_subset": sweep["train_subset"],
                                "test_subset": sweep["test_subset"]})
    run["sweep"] = canonical(dict(tag))
    return run


def landscape_variant(mean: float, std: float, landscape: Mapping) -> dict:
    """The dt variant of one landscape cell: constant for spread 0, else the landscape's clipped distribution."""
    if std == 0:
        dt = {"distribution": "constant", "value": float(mean)}
    else:
        dt = {"distribution": landscape["distribution"], "mean": float(mean), "std": float(std),
              "clip_min": landscape["clip_min"], "clip_max": landscape["clip_max"]}
    return {"name": f"mean{number(mean)}_std{number(std)}", "dt": dt}


def landscape_plan(config: Mapping) -> dict[str, list[tuple[str, dict]]]:
    """mean (as in the folder names) -> [(run folder, run config)]: one stacked training job per dt mean."""
    land = config["mechanism"]["landscape"]
    plan: dict[str, list[tuple[str, dict]]] = {}
    for mean in land["means"]:
        jobs = []
        for std in land["stds"]:
            variant = landscape_variant(mean, std, land)
            for seed in land["seeds"]:
                folder = f"{LANDSCAPE}/{land['dataset']}/{variant['name']}/seed{seed}"
                jobs.append((folder, sweep_run(config, land, variant, seed, {"name": "landscape", "mean": mean,
                                                                              "std": std})))
        plan[number(mean)] = jobs
    return plan


def declared_spectra(config: Mapping) -> dict[tuple, dict]:
    """Key (dataset, variant, seed) -> what the spectral rows of that grid run depend on: its run config and the
    spectral settings (as htsep.experiments.mechanism.spectra records them)."""
    spec = config["mechanism"]["spectral"]
    training = protocol_training(config, spec["protocol"])  # checked once, shared by every run
    return {(d, v, s): {"run": run_slice(config, d, v, s, spec["protocol"], training=training),
                        "spectral": spectral_setting(spec)} for d, v, s in spectral_runs(config)}


def spectral_setting(spec: Mapping) -> dict:
    """What a run's spectral rows depend on besides the run: the spectral settings but which runs are measured."""
    return {k: v for k, v in spec.items() if k not in ("datasets", "seeds")}


def declared_landscape(config: Mapping) -> dict[tuple, dict]:
    """Key (dataset, mean, std, seed) -> run config of every landscape run."""
    return {(run["dataset"]["name"], float(run["sweep"]["mean"]), float(run["sweep"]["std"]), run["seed"]): run
            for jobs in landscape_plan(config).values() for _, run in jobs}
