"""Which trained models the robustness experiment evaluates, pure functions of the config and of ``runs``, the runs
of the experiments named by config key robustness.experiments (``htsep.study.evaluated_runs`` collects them: this
folder imports no other experiment), in the grid's run layout (the train rule trains a model the records lack), and
the contrasts its analysis makes."""

from __future__ import annotations

import math
from collections.abc import Mapping

from ...config import ConfigError, protocol_training, variant_by_name
from ...paths import ROBUSTNESS, RUN_LAYOUT, RUNS
from ...records import to_train
from ...run_tables import RUN_KEYS

KEYS = RUN_KEYS  # an evaluated model
TABLES = ("runs", "conditions")  # one row per model; one per model, perturbation, level and draw
SHARD = {table: f"{ROBUSTNESS}/shard.{table}.csv" for table in TABLES}  # this invocation's evaluations
EVALUATION = {table: f"{ROBUSTNESS}/models/{RUN_LAYOUT}/{table}.csv" for table in TABLES}  # one model's (a pattern)
SETTING_KEYS = ("input_noise", "weight_noise", "draws", "free_steps", "dt_swap", "noise_seed", "test_subset")
LEVELS = ("input_noise", "weight_noise", "free_steps")  # the perturbations with levels


def setting(config: Mapping) -> dict:
    """What one model's evaluation depends on besides its run: the perturbations, their draws and the test images."""
    spec = config["robustness"]
    return {key: spec[key] for key in SETTING_KEYS} | {
        "heterogeneous_dt": variant_by_name(config, spec["dt_swap"]["heterogeneous"])["dt"]}


def check(config: Mapping) -> None:
    """Robustness config errors the schema cannot express, each naming its key, before any job runs."""
    spec = config["robustness"]
    for key in ("input_noise", "weight_noise"):
        for level in spec[key]:
            if not (isinstance(level, int | float) and math.isfinite(level) and level >= 0):
                raise ConfigError(f"config key robustness.{key}: levels are finite and >= 0, got {level!r}")
    for protocol in config["run_protocols"]:
        trained = protocol_training(config, protocol)["free_steps"]
        for level in spec["free_steps"]:
            if not (isinstance(level, int) and 1 <= level <= trained):
                raise ConfigError(f"config key robustness.free_steps: an inference T1 is an integer from 1 to the "
                                  f"training T1 ({trained} under protocol {protocol!r}), got {level!r}")
    name = spec["dt_swap"]["heterogeneous"]
    dt = variant_by_name(config, name)["dt"]
    if not isinstance(dt, Mapping) or dt.get("distribution") == "constant" or not dt.get("mean"):
        raise ConfigError(f"config key robustness.dt_swap.heterogeneous: variant {name!r} has no heterogeneous dt "
                          f"with a mean (got {dt!r})")


def declared(config: Mapping, runs: Mapping[tuple, Mapping]) -> dict[tuple, dict]:
    """Key (protocol, dataset, variant, seed) of each of ``runs`` -> what its evaluation depends on: the run config
    with the robustness setting under ``robustness``."""
    evaluation = setting(config)
    return {key: {**run, "robustness": evaluation} for key, run in runs.items()}


def evaluated_keys(config: Mapping, runs: Mapping[tuple, Mapping]) -> list[tuple]:
    """The models of ``runs`` this invocation evaluates (config key records.train; a model the robustness records
    hold is not missing)."""
    return to_train(config, "robustness", "runs", KEYS, declared(config, runs))


def evaluation_files(config: Mapping, runs: Mapping[tuple, Mapping], table: str) -> list[str]:
    """This invocation's per-model tables ``table``."""
    return [EVALUATION[table].format(protocol=p, dataset=d, variant=v, seed=s)
            for p, d, v, s in evaluated_keys(config, runs)]


def model_file(key: tuple) -> str:
    """The trained model of an evaluated run."""
    protocol, dataset, variant, seed = key
    return f"{RUNS.format(protocol=protocol, dataset=dataset, variant=variant, seed=seed)}/model.pt"


def contrasts(config: Mapping, runs: Mapping[tuple, Mapping]) -> list[dict]:
    """The paired contrasts of the analysis, within a protocol: the preregistered ones (config key
    preregistration.contrasts, not those with a baseline of another protocol), then each other evaluated variant of
    ``runs`` against the mean-matched uniform control (analysis.mean_matched); the analysis keeps those whose two arms
    it has."""
    named = [{"contrast": name, "variant": c["variant"], "baseline": c["baseline"]}
             for name, c in config["preregistration"]["contrasts"].items() if not c.get("baseline_protocol")]
    control = config["analysis"]["mean_matched"]
    evaluated = {key[2] for key in runs}
    seen = {(c["variant"], c["baseline"]) for c in named}
    others = [{"contrast": f"{v['name']} vs {control}", "variant": v["name"], "baseline": control}
              for v in config["variants"] if v["name"] in evaluated and v["name"] != control
              and (v["name"], control) not in seen]
    return named + others
