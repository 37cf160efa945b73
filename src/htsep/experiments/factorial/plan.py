"""The factorial's runs, pure functions of the config: every (dataset, cell, seed) of config key factorial under its
protocol, in the grid's run layout (the train rule trains them; a cell that is also a grid variant is the same run).

A cell is a declared variant: a constant dt (spread 0) or a normal dt whose clipping follows the factorial's one
rule, clipped to mean +- ``clip_sds`` s.d. (at least ``DT_FLOOR``, at most 1). Its coordinates are the target mean
(``dt_mean``) and the coefficient of variation (``dt_spread``, s.d. / mean to 3 decimals); the expected mean after
clipping must lie within ``mean_tolerance`` of the target.
"""

from __future__ import annotations

from collections.abc import Mapping

from scipy import stats as sps

from ...config import ConfigError, check_protocol_and_datasets, protocol_training, run_slice, variant_by_name
from ...paths import FACTORIAL, RUNS
from ...records import to_train
from ...run_tables import RUN_KEYS

KEYS = RUN_KEYS  # a factorial run
SHARD = {table: f"{FACTORIAL}/shard.{table}.csv" for table in ("runs", "epochs")}  # this invocation's runs
EXPERIMENTS = ("grid", "factorial")  # whose committed records hold factorial runs (cells shared with the grid)
DT_FLOOR = 1e-3  # the smallest dt a clipped cell may take (htsep.ep.timesteps.DEFAULT_CLIP)
RULE_TOLERANCE = 1e-3  # how closely a declared clip bound must follow the clipping rule


def clipped_normal_mean(mean: float, std: float, low: float, high: float) -> float:
    """E[clip(X, low, high)] for X ~ N(mean, std^2)."""
    if std == 0:
        return min(max(mean, low), high)
    a, b = (low - mean) / std, (high - mean) / std
    inside = sps.norm.cdf(b) - sps.norm.cdf(a)
    return float(low * sps.norm.cdf(a) + high * sps.norm.sf(b) + mean * inside
                 + std * (sps.norm.pdf(a) - sps.norm.pdf(b)))


def cell(config: Mapping, name: str) -> dict:
    """The coordinates of factorial cell ``name``: target dt mean, spread (coefficient of variation) and the
    expected mean after clipping; ConfigError naming the variant if its dt is not a factorial cell."""
    spec, where = variant_by_name(config, name)["dt"], f"config key factorial.variants: variant {name!r}"
    if spec.get("distribution") == "constant":
        return {"variant": name, "dt_mean": float(spec["value"]), "dt_spread": 0.0,
                "expected_mean": float(spec["value"])}
    if spec.get("distribution") != "normal":
        raise ConfigError(f"{where}: a factorial cell is a constant or a clipped normal dt, got "
                          f"{spec.get('distribution')!r}")
    mean, std, k = float(spec["mean"]), float(spec["std"]), config["factorial"]["clip_sds"]
    rule = (max(mean - k * std, DT_FLOOR), min(mean + k * std, 1.0))
    given = (spec.get("clip_min", DT_FLOOR), spec.get("clip_max", 1.0))
    if any(abs(g - r) > RULE_TOLERANCE for g, r in zip(given, rule, strict=True)):
        raise ConfigError(f"{where}: clipped to [{given[0]:g}, {given[1]:g}], but the factorial's rule (mean +- "
                          f"{k:g} s.d., within [{DT_FLOOR:g}, 1]) gives [{rule[0]:.4g}, {rule[1]:.4g}]")
    return {"variant": name, "dt_mean": mean, "dt_spread": round(std / mean, 3),
            "expected_mean": clipped_normal_mean(mean, std, *given)}


def cells(config: Mapping) -> list[dict]:
    """Every cell of the factorial, in declared order."""
    return [cell(config, name) for name in config["factorial"]["variants"]]


def check(config: Mapping) -> None:
    """Factorial config errors the schema cannot express, each naming its key, before any job runs."""
    spec = config["factorial"]
    check_protocol_and_datasets(config, "factorial")
    for found in cells(config):
        miss = found["expected_mean"] - found["dt_mean"]
        if not abs(miss) <= spec["mean_tolerance"]:
            raise ConfigError(f"config key factorial.variants: variant {found['variant']!r} has mean "
                              f"{found['expected_mean']:.4f} after clipping, {miss:+.4f} from its target "
                              f"{found['dt_mean']:g} (factorial.mean_tolerance {spec['mean_tolerance']:g})")
    coordinates = [(c["dt_mean"], round(c["dt_spread"], 6)) for c in cells(config)]
    if len(set(coordinates)) < len(coordinates):
        raise ConfigError("config key factorial.variants: two variants are the same (dt mean, spread) cell")


def declared(config: Mapping) -> dict[tuple, dict]:
    """Key (protocol, dataset, variant, seed) -> run config of every factorial run."""
    spec = config["factorial"]
    training = protocol_training(config, spec["protocol"])  # checked once, shared by every run
    return {(spec["protocol"], d, v, int(s)): run_slice(config, d, v, s, spec["protocol"], training=training)
            for d in spec["datasets"] for v in spec["variants"] for s in spec["seeds"]}


def trained_keys(config: Mapping) -> list[tuple]:
    """The runs this invocation trains (config key records.train; a run the grid's or the factorial's records hold is
    not missing)."""
    return to_train(config, EXPERIMENTS, "runs", KEYS, declared(config))


def trained_here(config: Mapping) -> list[str]:
    """The run folders this invocation trains."""
    return [RUNS.format(protocol=p, dataset=d, variant=v, seed=s) for p, d, v, s in trained_keys(config)]
