"""Run records: the per-run tables a finished campaign commits (its shards), read back together with the runs of the
present invocation, so that shards from several campaigns and machines add up.

A shard is one or more CSV tables ``<root>/<date>-<experiment>/shards/<name>.<table>.csv``: one row per run (or per
run and epoch, or per run and condition), keyed by the experiment's key columns, each row with the run's config
(``config``, canonical JSON), code fingerprint and kernel build. An analysis reads its experiment's committed shards
in path order (the dated folders, oldest first) and then this invocation's table. A row whose run config differs from
the one the current config declares for its key (or whose key the config does not declare at all) is left out, with
a warning naming the shard; of the rest, a run recorded twice counts once, the last read. Rows of other code
fingerprints are
used and listed in the paper's provenance appendix. A committed shard that cannot be read, or lacks a column, is an
error naming the file (it is committed data: nothing is moved).
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from .config import canonical
from .files import read_table, write_table

log = logging.getLogger(__name__)

THIS_RUN = "this invocation"  # the record column of rows trained now

RECORD_COLUMNS = ("config", "code_fingerprint", "relaxation_kernel")  # besides an experiment's keys


class RecordError(ValueError):
    """A committed shard that cannot be used as a record; the message names the file."""


def config_json(run: Mapping) -> str:
    """A run config as a record stores it: canonical JSON."""
    return json.dumps(canonical(dict(run)), sort_keys=True)


def shard_id(path: str | Path) -> str:
    """The shard a table belongs to: its path without ``.<table>.csv`` (the runs and epochs tables of a shard share
    it)."""
    return re.sub(r"\.[A-Za-z_]+\.csv$", "", str(path))


def committed(config: Mapping, experiment: str | Sequence[str], table: str) -> list[str]:
    """The committed shard tables ``table`` of ``experiment`` (or of several) under config key records.root, in path
    order."""
    experiments = [experiment] if isinstance(experiment, str) else list(experiment)
    return sorted(path for name in experiments
                  for path in glob.glob(f"{config['records']['root']}/*-{name}/shards/*.{table}.csv"))


def read_shard(path: str | Path, keys: Sequence[str], record_columns: bool = True, local: bool = False
               ) -> pd.DataFrame:
    """One shard table with its key columns (and, with ``record_columns``, each run's config, code fingerprint and
    kernel build, one row per key); RecordError naming the file otherwise. A ``local`` shard (this invocation's, a
    pipeline output) that cannot be read is set aside to be remade (htsep.files); a committed one is left as it is."""
    if local:
        frame = read_table(path, "shard table")
    else:
        try:
            frame = pd.read_csv(path)
        except (OSError, ValueError, UnicodeDecodeError) as err:
            raise RecordError(f"record {path}: not a readable CSV table ({type(err).__name__}: {err})") from None
    needed = [*keys, *(RECORD_COLUMNS if record_columns else ())]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise RecordError(f"record {path}: lacks the columns {missing} a shard needs ({needed})")
    if frame[[c for c in needed if c not in ("code_fingerprint", "relaxation_kernel")]].isna().any().any():
        raise RecordError(f"record {path}: rows without a key or a run config (an incomplete shard)")
    if record_columns:
        if frame.duplicated(list(keys)).any():
            raise RecordError(f"record {path}: a run recorded twice in one shard "
                              f"({frame.loc[frame.duplicated(list(keys)), list(keys)].iloc[0].to_dict()})")
        for config in frame["config"]:
            try:
                json.loads(config)
            except (TypeError, ValueError):
                raise RecordError(f"record {path}: a run config that is not JSON ({str(config)[:60]!r})") from None
    return frame


def merge(records: Sequence[str | Path], local: pd.DataFrame | None, keys: Sequence[str],
          declared: Sequence[Sequence], experiment: str, scope: Mapping | None = None) -> pd.DataFrame:
    """The committed shard tables ``records`` (in order) and this invocation's rows, each left with the runs the
    config declares (declared_only; ``scope``: column -> value, the part of the experiment asked for), then one row
    per key (the last read wins), with a ``record`` column naming where each row came from."""
    frames = [read_shard(path, keys).assign(record=shard_id(path)) for path in records]
    if local is not None and len(local):
        frames.append(local.assign(record=THIS_RUN))
    for column, value in (scope or {}).items():
        frames = [f[f[column] == value] for f in frames]
    frames = [declared_only(f, declared, keys, experiment) for f in frames if len(f)]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=[*keys, *RECORD_COLUMNS, "record"])
    merged = pd.concat(frames, ignore_index=True)
    return merged.drop_duplicates(list(keys), keep="last").reset_index(drop=True)


EXECUTION = ("device", "threads", "eval_batch_size")  # training keys that say where and how fast, not what


def run_digest(run: str | Mapping) -> str:
    """What a record's run config is compared by: a digest of the config without its sweep tag (bookkeeping that
    repeats the record's key columns) and without the execution keys of its training (EXECUTION: a CPU and a GPU
    campaign train the same run)."""
    run = json.loads(run) if isinstance(run, str) else dict(run)
    run = {k: v for k, v in run.items() if k != "sweep"}
    if isinstance(run.get("training"), Mapping):
        run["training"] = {k: v for k, v in run["training"].items() if k not in EXECUTION}
    return hashlib.sha256(config_json(run).encode()).hexdigest()[:16]


def declared_runs(declared: Mapping[tuple, Mapping]) -> list[list]:
    """[key, digest] of every run an experiment's config declares (an analysis rule's params: compact, and a rerun
    trigger when any declared run config changes)."""
    return [[list(key), run_digest(run)] for key, run in declared.items()]


def to_train(config: Mapping, experiment: str | Sequence[str], table: str, keys: Sequence[str],
             declared: Mapping[tuple, Mapping]) -> list[tuple]:
    """The keys of the declared runs this invocation trains, by config key records.train: ``all``, ``none`` (a
    records-only build), or ``missing``: those no committed record of ``experiment`` (or of several) holds with the
    declared run config (so a campaign adds to the records instead of repeating them)."""
    mode = config["records"]["train"]
    if mode != "missing":
        return list(declared) if mode == "all" else []
    name = experiment if isinstance(experiment, str) else "+".join(experiment)
    recorded = merge(committed(config, experiment, table), None, keys, declared_runs(declared), name)
    have = set(recorded[list(keys)].itertuples(index=False, name=None))
    return [key for key in declared if key not in have]


def declared_only(frame: pd.DataFrame, declared: Sequence[Sequence], keys: Sequence[str],
                  experiment: str) -> pd.DataFrame:
    """The rows whose key the current config declares (``declared``: see declared_runs), with the run config it
    declares for that key; the others are left out with one warning per record naming it, how many rows and why
    (silently for undeclared runs of another experiment's record, read for the runs the experiments share)."""
    wanted = {tuple(key): digest for key, digest in declared}
    keep, dropped = [], {}
    for i, row in enumerate(frame[[*keys, "config", "record"]].itertuples(index=False, name=None)):
        key, config, record = tuple(row[:len(keys)]), row[len(keys)], row[-1]
        reason = "not declared by the config" if key not in wanted else \
            None if run_digest(config) == wanted[key] else "another run config than the config declares"
        if reason is None:
            keep.append(i)
        elif key in wanted or record == THIS_RUN or f"-{experiment}/shards/" in record:
            dropped.setdefault((record, reason), []).append(key)
    for (record, reason), runs in dropped.items():
        log.warning("%s record %s: %d run(s) left out, %s (e.g. %s)", experiment, record, len(runs), reason,
                    dict(zip(keys, runs[0], strict=True)))
    return frame.iloc[keep].reset_index(drop=True)


def merge_experiment(records: Mapping[str, Sequence[str]], local: Mapping[str, str], keys: Sequence[str],
                     declared: Sequence[Sequence], experiment: str, scope: Mapping | None = None,
                     required: bool = True) -> dict[str, pd.DataFrame]:
    """An experiment's tables from its committed shards and this invocation's (``records``/``local``: table name ->
    committed paths / this invocation's path, absent when it trains nothing). Table ``runs`` has one row per run with
    the record columns; each
    other table (per run and epoch, per run and condition) keeps the rows of the record its run row came from.
    ``scope`` (column -> value) restricts the rows to one part of the experiment (e.g. one protocol of the grid). No run
    at all is an error if ``required``, else empty tables."""
    runs = merge(records["runs"], read_shard(local["runs"], keys, local=True) if "runs" in local else None, keys,
                 declared, experiment, scope)
    if not len(runs) and required:
        raise RecordError(f"{experiment}: no run to analyse: no committed record under records.root holds a run the "
                          f"config declares{' for ' + str(scope) if scope else ''}, and this invocation trained none")
    tables = {"runs": runs}
    for name in (name for name in records if name != "runs"):
        frames = [read_shard(path, keys, record_columns=False).assign(record=shard_id(path)) for path in records[name]]
        if name in local:
            frames.append(read_shard(local[name], keys, record_columns=False, local=True).assign(record=THIS_RUN))
        rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*keys, "record"])
        tables[name] = rows.merge(runs[[*keys, "record"]], on=[*keys, "record"]).drop(columns="record")
    return tables


def provenance(frame: pd.DataFrame, experiment: str) -> pd.DataFrame:
    """Per record the rows an analysis used, their code fingerprints and kernel builds (the provenance appendix)."""
    if not len(frame):
        return pd.DataFrame(columns=["experiment", "record", "n_rows", "code_fingerprints", "relaxation_kernels"])
    rows = []
    for record, group in frame.groupby("record", sort=True):
        rows.append({"experiment": experiment, "record": record, "n_rows": len(group),
                     "code_fingerprints": " ".join(sorted(set(group["code_fingerprint"].dropna().astype(str)))),
                     "relaxation_kernels": " | ".join(sorted(set(group["relaxation_kernel"].dropna().astype(str))))})
    return pd.DataFrame(rows)


def write_provenance(path: str | Path, frames: Mapping[str, pd.DataFrame], experiment: str) -> None:
    """The provenance table of an analysis that merged the tables ``frames`` (name -> merged frame)."""
    write_table(path, pd.concat([provenance(frame, experiment).assign(table=name) for name, frame in frames.items()],
                                ignore_index=True))


def save(local: Mapping[str, Sequence[str | Path]], name: str, root: str | Path, date: str) -> list[Path]:
    """Keep this invocation's shards as records: ``local`` (experiment -> its shard tables, as the current config
    names them) is copied to ``<root>/<date>-<experiment>/shards/<name>[-<part>].<table>.csv`` (part: the grid's
    protocol, the frontier's shard); tables without rows are skipped; nothing is written if any target exists."""
    copies = []
    for experiment, sources in local.items():
        for source in map(Path, sources):
            stem, table, _ = source.name.rsplit(".", 2)
            part = source.parent.name if experiment == "grid" else None if stem == "shard" else stem
            target = Path(root) / f"{date}-{experiment}" / "shards" / f"{name}{'-' + part if part else ''}.{table}.csv"
            if source.exists() and len(pd.read_csv(source)):
                copies.append((source, target))
    existing = [str(target) for _, target in copies if target.exists()]
    if existing:
        raise RecordError(f"records {existing} exist; choose another --name or --date")
    for source, target in copies:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
    return [target for _, target in copies]
