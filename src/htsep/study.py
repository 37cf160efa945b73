"""The study's configuration as a whole: read, validated against the schema, and checked key by key, the keys every
experiment shares (htsep.config) and then each experiment's own section (its plan's ``check``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from .config import SCHEMA_PATH, check_common, read_config
from .experiments.calibration import plan as calibration
from .experiments.confirmatory import plan as confirmatory
from .experiments.depth import plan as depth
from .experiments.factorial import plan as factorial
from .experiments.frontier import plan as frontier
from .experiments.grid import plan as grid
from .experiments.mechanism import plan as mechanism
from .experiments.robustness import plan as robustness
from .experiments.sensitivity import plan as sensitivity

# every experiment whose config section has checks
PLANS = (calibration, mechanism, frontier, confirmatory, factorial, robustness, sensitivity, depth)
# the experiments whose runs' model.pt is evaluated: their declared runs, and which of them this invocation holds
MODEL_EXPERIMENTS = {"grid": (grid.declared, None), "confirmatory": (confirmatory.declared, confirmatory.in_shard)}


def check_config(config: Mapping) -> None:
    """Every check the schema cannot express; ConfigError naming the key."""
    check_common(config)
    for plan in PLANS:
        plan.check(config)


def evaluated_runs(config: Mapping, this_invocation: bool = False) -> dict[tuple, dict]:
    """Key -> run config of every model the robustness experiment evaluates: the runs of the experiments config key
    robustness.experiments names, under every protocol in run_protocols (not a baseline trained under a protocol of
    its own: its contrasts compare arms of one protocol); ``this_invocation``: only the confirmatory runs of this
    invocation's shard (config key confirmatory_shard)."""
    runs = {}
    for experiment in config["robustness"]["experiments"]:
        declare, in_shard = MODEL_EXPERIMENTS[experiment]
        for protocol in config["run_protocols"]:
            runs |= {key: run for key, run in declare(config, protocol).items() if key[0] == protocol
                     and (not (this_invocation and in_shard) or in_shard(config, key))}
    return runs


def load_config(paths, schema_path: Path = SCHEMA_PATH) -> dict:
    """Read and merge YAML files in order, validate and check; raises ConfigError naming the bad key."""
    config = read_config(paths, schema_path)
    check_config(config)
    return config


def local_shards(config: Mapping) -> dict[str, list[str]]:
    """Experiment -> the shard tables this invocation's config writes (what ``htsep records save`` keeps)."""
    return {"grid": [path for p in grid.protocols(config) for path in grid.shard_tables(p).values()],
            "calibration": list(calibration.SHARD.values()),
            "mechanism": [*mechanism.SPECTRAL_SHARD.values(), *mechanism.LANDSCAPE_SHARD.values()],
            "frontier": list(frontier.shard_tables(config)),
            "confirmatory": list(confirmatory.SHARD.values()),
            "factorial": list(factorial.SHARD.values()),
            "robustness": list(robustness.SHARD.values()),
            "sensitivity": list(sensitivity.SHARD.values()),
            "depth": list(depth.SHARD.values())}


def stacked_members(config: Mapping) -> dict[tuple[str, str], list[tuple[str, int]]]:
    """(protocol, dataset) -> (variant, seed) of every EP run this invocation trains, the grid's, the confirmatory
    experiment's and the factorial's, and those whose model the robustness evaluation reads (records keep no model),
    each once: what the stacked train jobs (config key execution.batch_runs) hold."""
    keys = [key for p in config["run_protocols"] for key in grid.trained_keys(config, p)]
    evaluated = robustness.evaluated_keys(config, evaluated_runs(config, this_invocation=True))
    members: dict[tuple[str, str], list[tuple[str, int]]] = {}
    trained = [*keys, *confirmatory.trained_keys(config), *factorial.trained_keys(config), *evaluated]
    for protocol, dataset, variant, seed in dict.fromkeys(trained):
        members.setdefault((protocol, dataset), []).append((variant, int(seed)))
    return members
