"""The grid's tables, per protocol: the shards committed under records.root merged with this invocation's
(htsep.run_tables: runs and epochs; its shard is written by htsep.run_tables.write_shard) into runs, epochs and
every neuron's dt, each run once, only runs the config declares with the run config it declares (htsep.records).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import pandas as pd

from ...ep.timesteps import resolve_dt
from ...files import write_table
from ...records import write_provenance
from ...run_tables import LABELS, merged
from .plan import KEYS


def dt_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Every neuron's dt in the EP runs ``runs``: drawn from each run's dt spec and seed, as training draws it."""
    dts = []
    for row in runs[[*KEYS, *LABELS, "config"]].itertuples(index=False):
        run = json.loads(row.config)
        for layer, dt in enumerate(resolve_dt(run["variant"]["dt"], run["model"]["sizes"], run["seed"]), start=1):
            dts.append(pd.DataFrame({**{k: getattr(row, k) for k in [*KEYS, *LABELS]}, "layer": layer,
                                     "neuron": range(len(dt)), "dt": dt.double().numpy()}))
    return pd.concat(dts, ignore_index=True) if dts else pd.DataFrame(columns=[*KEYS, *LABELS, "layer", "neuron", "dt"])


def aggregate(records: Mapping[str, Sequence[str]], shard: Mapping[str, str], outputs: Mapping[str, str],
              declared: Sequence[Sequence]) -> None:
    """One protocol's tables (CSV and parquet), every EP run's dt values and the provenance of its rows."""
    protocol = declared[0][0][0] if declared else None
    runs, epochs = merged(records, shard, declared, "grid", scope={"protocol": protocol})
    write_provenance(outputs["provenance"], {f"{runs['protocol'].iloc[0]} runs" if len(runs) else "runs": runs}, "grid")
    runs = runs.drop(columns="record")
    write_table(outputs["runs_csv"], runs)
    write_table(outputs["runs"], runs)
    write_table(outputs["epochs_csv"], epochs)
    write_table(outputs["epochs"], epochs)
    write_table(outputs["dt"], dt_table(runs[runs["variant"] != "backprop"]))
