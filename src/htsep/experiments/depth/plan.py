"""The depth experiment's runs, pure functions of the config.

The experiment has a network of its own (config key depth.hidden): every run's config is the study's with that
network, the depth's epochs and no snapshots. Its search trains the reference variant at every point of
depth.search.points on the search dataset's fit split, scored on its validation split (folders
``results/depth/search/<dataset>/<variant>/<point>/seed<seed>``); its runs train the protocol (depth.protocol) at each
T1 of depth.free_steps.levels, every variant x seed on the full training and test sets
(``results/depth/runs/<dataset>/T1<free_steps>/<variant>/seed<seed>``).
"""

from __future__ import annotations

from collections.abc import Mapping

from ...config import PROTOCOL_KEYS, ConfigError, canonical, check_training, run_slice, variant_by_name
from ...outcomes import FAILURE_CRITERIA
from ...paths import DEPTH
from ...records import to_train
from ...searches import SEARCH_KEYS, point_name, product_points

KEYS = ("dataset", "free_steps", "variant", "seed")  # a depth run
SHARD = {table: f"{DEPTH}/shard.{table}.csv" for table in ("search", "runs", "epochs")}  # this invocation's runs
RUN = f"{DEPTH}/runs/{{dataset}}/T1{{free_steps}}/{{variant}}/seed{{seed}}"  # one run's folder (a pattern)
SEARCH_RUN = f"{DEPTH}/search/{{dataset}}/{{variant}}/{{point}}/seed{{seed}}"
PROFILE = "convergence.csv"  # a search run's free-phase profile on validation images, beside its metrics


def hidden_label(run: Mapping) -> str:
    """A run config's hidden layer sizes as its records name them, e.g. '256-256'."""
    return "-".join(str(n) for n in run["model"]["sizes"][1:-1])


def deep_config(config: Mapping) -> dict:
    """The study's config with the depth network in place of config key model."""
    return {**config, "model": {**config["model"], "hidden": list(config["depth"]["hidden"])}}


def depth_training(config: Mapping, overrides: Mapping, key: str, label: str) -> dict:
    """The study's training with ``overrides`` (protocol keys, from config key ``key``; ``label`` names them in
    errors), the depth's epochs and no snapshots, checked against the depth network (one learning rate per layer)."""
    for name in overrides:
        if name not in PROTOCOL_KEYS:
            raise ConfigError(f"config key {key}.{name}: the depth overrides only {', '.join(PROTOCOL_KEYS)}")
    training = canonical({**config["training"], **overrides, "epochs": config["depth"]["epochs"],
                          "snapshot_epochs": []})
    check_training(deep_config(config), training, f"depth {label}", lr_key=f"{key}.lr")
    return training


def level_training(config: Mapping, free_steps: int) -> dict:
    """The depth protocol's training at T1 = ``free_steps``."""
    return depth_training(config, {**config["depth"]["protocol"], "free_steps": int(free_steps)}, "depth.protocol",
                          f"protocol at T1 = {free_steps}")


def levels(config: Mapping) -> dict[str, int]:
    """The trained T1 levels by role (unconverged, converged)."""
    return dict(config["depth"]["free_steps"]["levels"])


def search_points(config: Mapping) -> dict[str, dict]:
    """Point name -> values of the depth search, the product of its value lists in declared order."""
    return product_points(config["depth"]["search"]["points"])


def check(config: Mapping) -> None:
    """Depth config errors the schema cannot express, each naming its key, before any job runs."""
    spec = config["depth"]
    for dataset in [*spec["datasets"], spec["search"]["dataset"]]:
        if dataset not in config["data"]:
            raise ConfigError(f"config key depth: dataset {dataset!r} is not configured under data")
    for name in [*spec["variants"], spec["search"]["variant"]]:
        variant_by_name(config, name)
    for name, contrast in spec["contrasts"].items():
        for arm in ("variant", "baseline"):
            if contrast[arm] not in spec["variants"]:
                raise ConfigError(f"config key depth.contrasts.{name}.{arm}: {contrast[arm]!r} is not in "
                                  f"depth.variants {spec['variants']}")
    for point in search_points(config).values():
        depth_training(config, point, "depth.search.points", f"search point {point_name(point)}")
    steps = spec["free_steps"]
    if steps["converged"] >= steps["unconverged"]:
        raise ConfigError(f"config key depth.free_steps: the converged share ({steps['converged']}) must lie below "
                          f"the unconverged share ({steps['unconverged']}), or no T1 separates the two")
    own = levels(config)
    if own["unconverged"] >= own["converged"]:
        raise ConfigError(f"config key depth.free_steps.levels: the unconverged T1 ({own['unconverged']}) must be "
                          f"smaller than the converged T1 ({own['converged']})")
    for role, t1 in own.items():
        if t1 not in steps["candidates"]:
            raise ConfigError(f"config key depth.free_steps.levels.{role}: T1 = {t1} is not one of the candidates "
                              f"{steps['candidates']} the validation diagnosis scores")
        level_training(config, t1)
    for criterion in spec["failure"]["criteria"]:
        if criterion not in FAILURE_CRITERIA:
            raise ConfigError(f"config key depth.failure.criteria: unknown measure {criterion!r}")


def search_run(config: Mapping, dataset: str, variant: str, point: str, seed: int) -> dict:
    """The run of one search point (trained on the fit split, scored on validation), tagged with its point."""
    values = search_points(config)[point]
    training = depth_training(config, values, "depth.search.points", f"search point {point}")
    run = run_slice(deep_config(config), dataset, variant, seed, training=training)
    return canonical(run | {"sweep": {"name": "depth_search", "kind": "ep", "point": point}})


def declared_search(config: Mapping) -> dict[tuple, dict]:
    """Key (dataset, variant, point, seed) -> run config of every run of the depth search."""
    search = config["depth"]["search"]
    return {(search["dataset"], search["variant"], point, int(seed)):
            search_run(config, search["dataset"], search["variant"], point, seed)
            for point in search_points(config) for seed in search["seeds"]}


def depth_run(config: Mapping, dataset: str, free_steps: int, variant: str, seed: int,
              training: Mapping | None = None) -> dict:
    """The run config of one depth run (``training``: its level's, if already computed), tagged with its T1."""
    run = run_slice(deep_config(config), dataset, variant, seed, "depth",
                    training=training or level_training(config, free_steps))
    return canonical(run | {"sweep": {"name": "depth", "free_steps": int(free_steps)}})


def declared(config: Mapping) -> dict[tuple, dict]:
    """Key (dataset, free_steps, variant, seed) -> run config of every depth run."""
    spec = config["depth"]
    trainings = {t1: level_training(config, t1) for t1 in levels(config).values()}
    return {(d, t1, v, int(s)): depth_run(config, d, t1, v, s, trainings[t1])
            for d in spec["datasets"] for t1 in sorted(trainings) for v in spec["variants"] for s in spec["seeds"]}


def search_folder(key: tuple) -> str:
    dataset, variant, point, seed = key
    return SEARCH_RUN.format(dataset=dataset, variant=variant, point=point, seed=seed)


def run_folder(key: tuple) -> str:
    dataset, free_steps, variant, seed = key
    return RUN.format(dataset=dataset, free_steps=free_steps, variant=variant, seed=seed)


def searched_here(config: Mapping) -> list[str]:
    """The search run folders this invocation trains (config key records.train)."""
    return [search_folder(k) for k in to_train(config, "depth", "search", SEARCH_KEYS, declared_search(config))]


def trained_here(config: Mapping) -> list[str]:
    """The depth run folders this invocation trains (config key records.train)."""
    return [run_folder(k) for k in to_train(config, "depth", "runs", KEYS, declared(config))]
