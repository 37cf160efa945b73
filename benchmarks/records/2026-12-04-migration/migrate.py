"""Turn the records committed before run records existed into shards (htsep.records), checking each run's config.

    python benchmarks/records/2026-12-04-migration/migrate.py     # from the repository root

The old records hold tables without the run config of each run. For each record this script rebuilds, with today's
code, the run config its runs were trained with from the config files of the commit that recorded it (git show
<commit>:config/config.yaml, config/offline.yaml and the record's own overrides), and compares it (htsep.records
.run_digest) with the run config today's config declares for the same run. Rows whose rebuilt config matches are
written with that config; the others are reported and left out (none were). Code fingerprints were not recorded
then: the shard says "pre-records (<commit>)"; the kernel build is the one the record's README names.
"""

import copy
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from htsep.config import deep_update, validate_schema
from htsep.experiments.calibration import plan as calibration
from htsep.experiments.frontier import plan as frontier
from htsep.experiments.frontier.stats import KEYS as FRONTIER_KEYS
from htsep.experiments.grid import plan as grid
from htsep.records import config_json, run_digest
from htsep.study import load_config

RECORDS = Path("benchmarks/records")
TODAY = load_config(["config/config.yaml", "config/offline.yaml"])
KERNEL = "relax_one_hidden (avx512, 16 lanes; -march=native), Intel Xeon"  # every old CPU record's README


def config_at(commit: str, *overrides: dict) -> dict:
    """The config files of ``commit`` (config.yaml, offline.yaml) with ``overrides``, read by today's schema (keys it
    no longer has are dropped: they configured no run)."""
    config: dict = {}
    for name in ("config/config.yaml", "config/offline.yaml"):
        text = subprocess.run(["git", "show", f"{commit}:{name}"], capture_output=True, text=True, check=True).stdout
        deep_update(config, yaml.safe_load(text))
    for override in overrides:
        deep_update(config, override)
    prune(config, yaml.safe_load(Path("config/schema.yaml").read_text()))
    validate_schema(config)
    return config


def prune(config: dict, schema: dict) -> None:
    """Drop the keys today's schema no longer knows (retired settings such as mechanism.stress or frontier.records,
    which configured no grid, calibration or frontier run)."""
    properties = schema.get("properties", {})
    for key in list(config):
        if key not in properties and schema.get("additionalProperties") is False:
            print(f"retired config key {key} dropped")
            del config[key]
        elif isinstance(config[key], dict) and key in properties:
            prune(config[key], properties[key])


def checked(rows: pd.DataFrame, keys: list[str], then: dict, now: dict, commit: str, where: str) -> pd.DataFrame:
    """``rows`` with the run config ``then`` declares for each key, those matching ``now``'s declaration only."""
    configs, kept = [], []
    for i, key in enumerate(rows[keys].itertuples(index=False, name=None)):
        key = tuple(float(k) if isinstance(k, float) else k for k in key)
        if key in then and key in now and run_digest(then[key]) == run_digest(now[key]):
            configs.append(config_json(then[key]))
            kept.append(i)
        else:
            print(f"{where}: run {dict(zip(keys, key, strict=True))} left out (its config is not today's)")
    out = rows.iloc[kept].assign(config=configs, code_fingerprint=f"pre-records ({commit})", relaxation_kernel=KERNEL)
    print(f"{where}: {len(out)} of {len(rows)} runs kept")
    return out


def grid_record(folder: str, commit: str, overrides: dict, name: str, shards: str) -> None:
    """A calibrated-grid record (runs.csv, epochs.csv; protocols calibrated and backprop) as grid shards in the
    records folder ``shards`` (named by the campaign's date)."""
    then = config_at(commit, overrides)
    runs = pd.read_csv(RECORDS / folder / "runs.csv")
    epochs = pd.read_csv(RECORDS / folder / "epochs.csv")
    out = RECORDS / shards / "shards"
    out.mkdir(parents=True, exist_ok=True)
    for protocol, own in runs.groupby("protocol"):
        declared_then, declared_now = grid.declared(then, protocol), grid.declared(TODAY, protocol)
        kept = checked(own, grid.KEYS, declared_then, declared_now, commit, f"{folder} {protocol}")
        kept.to_csv(out / f"{name}-{protocol}.runs.csv", index=False)
        keys = kept[grid.KEYS].apply(tuple, axis=1)
        own_epochs = epochs[epochs[grid.KEYS].apply(tuple, axis=1).isin(set(keys))]
        own_epochs.to_csv(out / f"{name}-{protocol}.epochs.csv", index=False)


def calibration_record() -> None:
    commit = "d853d10"
    table = pd.read_csv(RECORDS / "2026-12-01-calibration" / "calibration.csv")
    rows = table[["kind", "point", "seed", "val_acc", "diverged", *[c for c in table.columns if "dead" in c
                                                                  or c == "classes_never_predicted"]]]
    kept = checked(rows, calibration.KEYS, calibration.declared(config_at(commit)), calibration.declared(TODAY),
                   commit, "2026-12-01-calibration")
    out = RECORDS / "2026-12-01-calibration" / "shards"
    out.mkdir(parents=True, exist_ok=True)
    kept.to_csv(out / "fashion_mnist-search.runs.csv", index=False)


def frontier_record() -> None:
    commit = "0dd60fa"  # the frontier record's final commit: its config declares every shard's levels
    then, now = frontier.declared(config_at(commit)), frontier.declared(TODAY)
    out = RECORDS / "2026-12-02-frontier" / "shards"
    for path in sorted(out.glob("*.csv")):
        if path.name.endswith(".runs.csv"):
            continue
        shard = pd.read_csv(path).drop(columns=["code_fingerprint", "relaxation_kernel"])
        old = pd.read_csv(path)
        kept = checked(shard, FRONTIER_KEYS, then, now, commit, f"frontier {path.name}")
        kept = kept.assign(code_fingerprint=old.loc[kept.index, "code_fingerprint"].to_numpy(),
                           relaxation_kernel=old.loc[kept.index, "relaxation_kernel"].to_numpy())
        kept.to_csv(path.with_name(path.stem + ".runs.csv"), index=False)
        path.unlink()


def main() -> int:
    calibrated = yaml.safe_load((RECORDS / "2026-12-01-calibrated-grid" / "calibrated.yaml").read_text())
    grid_record("2026-12-01-calibrated-grid", "0a9f98d", calibrated, "fashion_mnist-mnist-calibrated",
                "2026-12-01-calibrated-grid")
    kmnist = {"run_protocols": ["calibrated"], "datasets": ["kmnist"], "mechanism": {"spectral": {
        "protocol": "calibrated"}}}
    grid_record("2026-12-02-kmnist-calibrated", "90eb6b8", copy.deepcopy(kmnist), "kmnist-holdout-calibrated",
                "2026-12-02-grid")
    calibration_record()
    frontier_record()
    return 0


if __name__ == "__main__":
    sys.exit(main())
