"""The grid's runs, pure functions of the config read by the workflow: every (protocol, dataset, variant, seed) of
run_protocols x datasets x grid.variants x grid.seeds, and the backprop reference's (dataset, seed) as protocol and
variant ``backprop``, each with the run config it trains with."""

from __future__ import annotations

from collections.abc import Mapping

from ...config import BACKPROP, backprop_slice, protocol_training, run_slice
from ...paths import BACKPROP_RUNS, TABLES
from ...paths import run_folder as ep_run_folder
from ...records import to_train
from ...run_tables import RUN_KEYS

KEYS = RUN_KEYS  # a run of the grid


def protocols(config: Mapping) -> list[str]:
    """The grid's protocols, the backprop reference last (when configured)."""
    return [*config["run_protocols"], *([BACKPROP] if config["backprop"] is not None else [])]


def declared(config: Mapping, protocol: str) -> dict[tuple, dict]:
    """Key -> run config of every run of ``protocol`` the config declares."""
    grid = config["grid"]
    if protocol == BACKPROP:
        return {(BACKPROP, d, BACKPROP, int(s)): backprop_slice(config, d, s)
                for d in config["datasets"] for s in grid["seeds"]}
    training = protocol_training(config, protocol)  # checked once, shared by every run
    return {(protocol, d, v, int(s)): run_slice(config, d, v, s, protocol, training=training)
            for d in config["datasets"] for v in grid["variants"] for s in grid["seeds"]}


def run_folder(key: tuple) -> str:
    """The folder of one grid run (the backprop reference's have their own layout)."""
    protocol, dataset, variant, seed = key
    return BACKPROP_RUNS.format(dataset=dataset, seed=seed) if protocol == BACKPROP else ep_run_folder(*key)


def shard_tables(protocol: str) -> dict[str, str]:
    """Where this invocation's runs of ``protocol`` are written as a shard (table -> path)."""
    return {table: f"{TABLES}/{protocol}/shard.{table}.csv" for table in ("runs", "epochs")}


def trained_keys(config: Mapping, protocol: str) -> list[tuple]:
    """The runs this invocation trains for ``protocol`` (config key records.train)."""
    return to_train(config, "grid", "runs", KEYS, declared(config, protocol))


def trained_here(config: Mapping, protocol: str) -> list[str]:
    """The run folders this invocation trains for ``protocol``."""
    return [run_folder(key) for key in trained_keys(config, protocol)]
