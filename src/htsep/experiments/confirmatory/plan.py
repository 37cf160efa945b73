"""The confirmatory runs, pure functions of the config: for every protocol in run_protocols and dataset, each arm of
the preregistered contrasts (config key preregistration) on its seeds, with the run config it trains with (the
grid's run layout: the train rule trains them). A contrast's baseline may be trained under a protocol of its own
(``baseline_protocol``: standard EP tuned for itself), shared by every protocol that contrast is tested in."""

from __future__ import annotations

import math
from collections.abc import Mapping

from ...config import ConfigError, protocol_training, run_slice
from ...paths import CONFIRMATORY, RUNS
from ...records import to_train
from ...run_tables import RUN_KEYS

KEYS = RUN_KEYS  # a confirmatory run
SHARD = {"runs": f"{CONFIRMATORY}/shard.runs.csv"}  # this invocation's confirmatory runs


def arms(config: Mapping, protocol: str) -> list[tuple[str, str]]:
    """(protocol, variant) of every arm the contrasts compare when tested in ``protocol``, in the order they are
    named (each once)."""
    pairs = [pair for c in config["preregistration"]["contrasts"].values()
             for pair in ((protocol, c["variant"]), (c.get("baseline_protocol") or protocol, c["baseline"]))]
    return list(dict.fromkeys(pairs))


def family(contrast: Mapping) -> str:
    """The Holm family of a contrast within its protocol: 'primary' unless the contrast names its own."""
    return contrast.get("family") or "primary"


def check(config: Mapping) -> None:
    """Preregistration errors the schema cannot express, each naming its key, before any job runs."""
    spec = config["preregistration"]
    defined = [v["name"] for v in config["variants"]]
    for name, contrast in spec["contrasts"].items():
        for role in ("variant", "baseline"):
            if contrast[role] not in defined:
                raise ConfigError(f"config key preregistration.contrasts.{name}.{role}: {contrast[role]!r} is not "
                                  f"a trained variant (variants: {defined})")
        if contrast.get("baseline_protocol") and contrast["baseline_protocol"] not in config["protocols"]:
            raise ConfigError(f"config key preregistration.contrasts.{name}.baseline_protocol: "
                              f"{contrast['baseline_protocol']!r} is not a protocol {sorted(config['protocols'])}")
    if len(spec["seeds"]) < spec["min_seeds"]:
        raise ConfigError(f"config key preregistration.seeds: {len(spec['seeds'])} seeds, fewer than the "
                          f"{spec['min_seeds']} the design chose (preregistration.min_seeds)")
    shard = config.get("confirmatory_shard") or {}
    for key, known in (("protocols", config["run_protocols"]), ("datasets", config["datasets"])):
        for name in shard.get(key) or []:
            if name not in known:
                raise ConfigError(f"config key confirmatory_shard.{key}: {name!r} is not one of {known}")
    if shard.get("seeds") is not None:
        start, stop = (int(x) for x in shard["seeds"])
        if not start < stop:
            raise ConfigError(f"config key confirmatory_shard.seeds: need [first, stop) with first < stop, got "
                              f"{shard['seeds']}")
    reused = sorted(set(spec["seeds"]) & set(config["grid"]["seeds"]))
    if reused:
        raise ConfigError(f"config key preregistration.seeds: {reused} are exploratory grid seeds (grid.seeds); "
                          f"confirmatory runs use seeds never used before")


def declared(config: Mapping, protocol: str) -> dict[tuple, dict]:
    """Key -> run config of every confirmatory run the contrasts tested in ``protocol`` compare (their baselines'
    own protocols included)."""
    training = {p: protocol_training(config, p) for p, _ in arms(config, protocol)}  # checked once per protocol
    return {(p, d, v, int(s)): run_slice(config, d, v, s, p, training=training[p])
            for d in config["datasets"] for p, v in arms(config, protocol) for s in config["preregistration"]["seeds"]}


def in_shard(config: Mapping, key: tuple) -> bool:
    """Whether this invocation's shard (config key confirmatory_shard: the protocols tested, datasets and seeds
    [first, stop); null: all) holds the run ``key``; a baseline of its own protocol serves every protocol tested."""
    shard = config.get("confirmatory_shard") or {}
    protocol, dataset, _, seed = key
    protocols = shard.get("protocols") or config["run_protocols"]
    contrasts = config["preregistration"]["contrasts"].values()
    own = {c["baseline_protocol"] for c in contrasts if c.get("baseline_protocol")}
    start, stop = (int(x) for x in shard["seeds"]) if shard.get("seeds") is not None else (0, math.inf)
    return ((protocol in protocols or protocol in own) and dataset in (shard.get("datasets") or config["datasets"])
            and start <= int(seed) < stop)


def trained_keys(config: Mapping) -> list[tuple]:
    """The runs this invocation trains: those of its shard (config key confirmatory_shard) that config key
    records.train asks for."""
    runs = {key: run for p in config["run_protocols"] for key, run in declared(config, p).items()
            if in_shard(config, key)}
    return to_train(config, "confirmatory", "runs", KEYS, runs)


def trained_here(config: Mapping) -> list[str]:
    """The run folders this invocation trains."""
    return [RUNS.format(protocol=p, dataset=d, variant=v, seed=s) for p, d, v, s in trained_keys(config)]
