"""The depth search: the calibration's rule on the validation split for the deeper network, then T1 from the
selected networks' free phase on validation images.

Each search run trains the reference variant at one point on the fit split, scored on validation, and then relaxes the
first ``probe_size`` validation images of its final network for the largest candidate T1, recording at each candidate
the share of samples still moving by ``residual_tol`` (per layer and in any layer). The point is selected by the
calibration's rule (htsep.searches); of the selected point's runs, the mean share in any layer
decides: unconverged is the largest candidate where at least depth.free_steps.unconverged moves, converged the
smallest where at most depth.free_steps.converged does. The test set takes no part.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from ...data.splits import as_tensors, load_split
from ...ep.dynamics import moving_shares
from ...ep.model import EPNetwork
from ...files import read_run, read_table, read_torch, write_json, write_table
from ...records import RecordError, merge, read_shard, write_provenance
from ...searches import search_runs, winner
from ...training.sweeps import train_sweep
from .plan import PROFILE, SEARCH_KEYS, hidden_label


def train_search_run(run: Mapping, data_paths: Mapping[str, str], folder: str | Path,
                     candidates: Sequence[int]) -> None:
    """Train one search run (``data_paths``: fit and validation splits) and write its free-phase profile on the
    validation probe at every candidate T1 (``PROFILE`` beside its metrics)."""
    train_sweep([run], [str(folder)], data_paths, keep_model=True)
    state = read_torch(Path(folder) / "model.pt", "depth search model")
    net = EPNetwork.from_state_dict(state["network"])
    training = run["training"]
    x, _ = as_tensors(load_split(data_paths["test"]), run["dataset"].get("normalize"))
    shares = moving_shares(net, x[:training["probe_size"]], candidates, training["residual_tol"])
    layers = len(net.sizes) - 1
    write_table(Path(folder) / PROFILE, pd.DataFrame(
        [{"free_steps": t, **{f"moving_l{l + 1}": float(s[l]) for l in range(layers)}, "moving": float(s[-1])}
         for t, s in sorted(shares.items())]))


def profile_columns(profile: pd.DataFrame) -> dict[str, float]:
    """A profile as shard columns: ``moving_t<T>`` (any layer) and ``moving_t<T>_l<l>``."""
    out = {}
    for row in profile.to_dict("records"):
        t = int(row["free_steps"])
        out |= {f"moving_t{t}{name.removeprefix('moving')}": value for name, value in row.items()
                if name.startswith("moving")}
    return out


def search_shard(summary_paths: Iterable[str | Path]) -> pd.DataFrame:
    """One row per search run: the calibration's search columns, the network's hidden sizes and the run's free-phase
    profile."""
    paths = list(map(Path, summary_paths))
    runs = search_runs(paths)
    profiles = [{"hidden": hidden_label(read_run(path)[0]["config"]),
                 **profile_columns(read_table(path.parent / PROFILE, "depth search profile"))} for path in paths]
    return pd.concat([runs, pd.DataFrame(profiles, index=runs.index)], axis=1) if paths else runs


def write_search_shard(summary_paths: Iterable[str | Path], output: str | Path) -> None:
    write_table(output, search_shard(summary_paths))


def free_steps_choice(runs: pd.DataFrame, spec: Mapping) -> dict:
    """The T1 rule on the selected point's runs: the mean moving share at each candidate, the candidates it selects
    (None where no candidate qualifies) and whether the declared levels are those."""
    steps = spec["free_steps"]
    shares = {t: float(runs[f"moving_t{t}"].mean()) for t in sorted(steps["candidates"])}
    unconverged = [t for t, share in shares.items() if share >= steps["unconverged"]]
    converged = [t for t, share in shares.items() if share <= steps["converged"]]
    chosen = {"unconverged": max(unconverged) if unconverged else None,
              "converged": min(converged) if converged else None}
    separates = None not in chosen.values() and chosen["unconverged"] < chosen["converged"]
    return {"shares": shares, "selected": chosen, "separates": separates, "declared": dict(steps["levels"]),
            "declared_agree": separates and chosen == dict(steps["levels"])}


def write_search(records: Sequence[str], shard: Sequence[str], outputs: Mapping[str, str], params: Mapping) -> None:
    """The search table and the selection (protocol point and T1 levels) from the committed depth search shards and
    this invocation's, each declared run once; where the declared protocol or T1 levels differ from the selection,
    the selection says so (``*_agree``), and the paper states it."""
    spec = params["depth"]
    runs = merge(records, read_shard(shard[0], SEARCH_KEYS, local=True) if shard else None, SEARCH_KEYS,
                 params["declared"], "depth")
    if not len(runs):
        raise RecordError("depth: no search run recorded or trained for the declared depth search")
    write_provenance(outputs["provenance"], {"search": runs}, "depth")
    runs = runs.drop(columns="record")
    order = {point: i for i, point in enumerate(params["points"])}
    runs = runs.assign(order=runs["point"].map(order)).sort_values(["order", "seed"], ignore_index=True)
    write_table(outputs["table"], runs)
    chosen = winner(runs, params["points"])
    protocol = {**spec["protocol"]}
    write_json(outputs["selection"], {
        "rule": spec["search"]["selection"], "dataset": spec["search"]["dataset"],
        "variant": spec["search"]["variant"], "seeds": spec["search"]["seeds"], **chosen,
        "protocol_agree": all(protocol.get(k) == v for k, v in chosen["values"].items()),
        "free_steps": free_steps_choice(runs[runs["point"] == chosen["point"]], spec)})
