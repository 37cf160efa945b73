"""The spectral experiment: linear stability of the free relaxation of trained grid runs, with their own dt and
with dt swapped.

The fixed points of the relaxation do not depend on dt, so dt can only matter through the relaxation itself. For
each trained run (weights at each snapshot epoch and at the end), a probe of test images is relaxed for
``free_steps`` and for ``long_steps`` steps; at the state reached, the spectrum of the relaxation map's Jacobian
(``htsep.ep.dynamics.relaxation_spectrum``) is measured with the run's own dt and with its dt swapped (HTS weights
with uniform dt; uniform weights with the HTS dt of the same seed).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ...config import dataset_label
from ...data.splits import as_tensors, load_split
from ...ep.dynamics import fixed_point_residual, relaxation_diagnostics, relaxation_spectrum
from ...ep.model import ACTIVATIONS, EPNetwork, phi_gradients
from ...files import read_torch, write_table
from ...fingerprint import code_fingerprint
from ...paths import number
from ...records import config_json, merge_experiment, write_provenance
from .plan import spectral_setting

log = logging.getLogger(__name__)

MODULUS_EDGES = np.round(np.linspace(0.0, 2.0, 81), 6)  # |eigenvalue| histogram bins (width 0.025); above: clipped
KEYS = ["dataset", "variant", "seed"]  # a trained run the spectra are measured on


def _network(state: Mapping, weights=None, biases=None, dt=None) -> EPNetwork:
    """A float64 network from a saved state, optionally with other weights/biases (a snapshot) or dt."""
    net = EPNetwork.from_state_dict(state)
    net.weights = [w.double() for w in (weights if weights is not None else state["weights"])]
    net.biases = [b.double() for b in (biases if biases is not None else state["biases"])]
    net.dt = [d.double() for d in (dt if dt is not None else state["dt"])]
    return net


def _is_uniform_dt(dt: Sequence[torch.Tensor]) -> bool:
    values = torch.cat([d.flatten() for d in dt])
    return bool((values == values[0]).all())


def _finite(net: EPNetwork) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in net.weights + net.biases)


def dt_conditions(own_dt, same_seed_hts: Mapping[str, Sequence[torch.Tensor]],
                  swap_uniform: Sequence[float], swap_hts: bool) -> list[tuple[str, str, list[torch.Tensor]]]:
    """(dt_source, dt_kind, dt tensors) for one run: its own dt, each ``swap_uniform`` constant other than its
    own, and (uniform runs, when ``swap_hts``) the dt of each HTS run of the same dataset and seed."""
    conditions = [("own", "own", list(own_dt))]
    uniform = _is_uniform_dt(own_dt)
    own_value = float(own_dt[0].flatten()[0]) if uniform else None
    for value in swap_uniform:
        if uniform and math.isclose(value, own_value, rel_tol=1e-6):
            continue
        conditions.append((f"uniform {number(value)}", "uniform", [torch.full_like(d, value) for d in own_dt]))
    if uniform and swap_hts:
        for name, dt in same_seed_hts.items():
            conditions.append((name, "hts", list(dt)))
    return conditions


def _probe(test_path: str | Path, normalize, size: int) -> torch.Tensor:
    x, _ = as_tensors(load_split(test_path), normalize)
    return x[:size].double()


@torch.no_grad()
def spectrum_rows(net: EPNetwork, x: torch.Tensor, steps: Mapping[str, int], tol: float):
    """Per relaxation depth (``steps``: mode -> number of free steps from zero): the aggregate row of the spectral
    measures over the samples of probe ``x`` and the histograms of the eigenvalues' moduli of one network."""
    summaries, hists = [], []
    stacked = EPNetwork.stack([net])
    states, done = net.zero_states(x), 0
    for mode, n_steps in sorted(steps.items(), key=lambda kv: kv[1]):
        states = net.relax(x, n_steps - done, init=states)
        done = n_steps
        spectrum = relaxation_spectrum(net, x, states)
        eig = spectrum.eigenvalues
        rho = eig.abs().amax(-1)
        coupled = spectrum.coupled
        has = spectrum.n_coupled > 0
        c_abs = torch.nan_to_num(coupled.abs(), nan=-1.0).amax(-1)
        c_max = torch.nan_to_num(coupled, nan=-math.inf).amax(-1)
        c_min = torch.nan_to_num(coupled, nan=math.inf).amin(-1)
        nan = torch.full_like(rho, math.nan)
        u = torch.cat(phi_gradients(states, net.weights, net.drives(x)), -1)
        active = (ACTIVATIONS[net.activation].derivative(u) > 0).double().mean(-1)
        residual = fixed_point_residual(net, x, states)
        frame = pd.DataFrame({
            "relax": mode, "steps": n_steps, "sample": np.arange(len(x)),
            "spectral_radius": rho.numpy(), "lambda_max": eig[..., -1].numpy(), "lambda_min": eig[..., 0].numpy(),
            "coupled_radius": torch.where(has, c_abs, nan).numpy(),
            "coupled_max": torch.where(has, c_max, nan).numpy(),
            "coupled_min": torch.where(has, c_min, nan).numpy(),
            "coupling_max": spectrum.coupling_max.numpy(),
            "n_coupled": spectrum.n_coupled.numpy(), "active_frac": active.numpy(), "residual": residual.numpy(),
        })
        diag = relaxation_diagnostics(stacked, x.unsqueeze(0), n_steps, tol)
        r = frame["spectral_radius"]
        summaries.append({
            "relax": mode, "steps": n_steps, "n_samples": len(x),
            "rho_median": float(r.median()), "rho_mean": float(r.mean()), "rho_q10": float(r.quantile(0.1)),
            "rho_q90": float(r.quantile(0.9)), "rho_max": float(r.max()),
            "frac_rho_ge_1": float((r >= 1).mean()),
            "frac_lambda_below_minus1": float((frame["lambda_min"] < -1).mean()),
            "lambda_min_min": float(frame["lambda_min"].min()), "lambda_max_max": float(frame["lambda_max"].max()),
            "coupled_radius_median": float(frame["coupled_radius"].median()),
            "coupled_max_median": float(frame["coupled_max"].median()),
            "coupled_max_mean": float(frame["coupled_max"].mean()),
            "coupled_max_q90": float(frame["coupled_max"].quantile(0.9)),
            "coupled_min_median": float(frame["coupled_min"].median()),
            "coupling_max_median": float(frame["coupling_max"].median()),
            "coupling_max_mean": float(frame["coupling_max"].mean()),
            "coupling_max_q90": float(frame["coupling_max"].quantile(0.9)),
            "frac_coupling_ge_1": float((frame["coupling_max"] >= 1).mean()),
            # H is bipartite (layers), so a top eigenvalue of 0 on the coupled units means no coupling among them:
            # J is then diagonal, every eigenvalue is 1 - dt_i.
            "frac_decoupled": float((frame["coupling_max"].fillna(0.0) <= 1e-12).mean()),
            "n_coupled_mean": float(frame["n_coupled"].mean()), "active_frac_mean": float(frame["active_frac"].mean()),
            "residual_median": float(frame["residual"].median()), "frac_fixed": float((frame["residual"] < tol).mean()),
            **{k: float(v[0]) for k, v in diag.items()},
        })
        for part, values in (("all", eig), ("coupled", coupled)):
            flat = values.flatten().numpy()
            moduli = np.clip(np.abs(flat[np.isfinite(flat)]), MODULUS_EDGES[0], MODULUS_EDGES[-1])
            counts, _ = np.histogram(moduli, MODULUS_EDGES)
            nonzero = np.flatnonzero(counts)
            hists.append(pd.DataFrame({"relax": mode, "part": part, "bin_low": MODULUS_EDGES[nonzero],
                                       "bin_high": MODULUS_EDGES[nonzero + 1], "count": counts[nonzero]}))
    return summaries, hists


def spectral_experiment(models: Sequence[str | Path], test_data: Mapping[str, str | Path],
                        outputs: Mapping[str, str], spec: Mapping) -> None:
    """Relaxation spectra of the trained grid runs ``models`` (on the first images of ``test_data[dataset]``) with
    their own and swapped dt (``spec``: the config's ``mechanism.spectral``), as a shard: one row per run (its
    config), one per run and condition, and the histograms of the eigenvalues' moduli the figure shows."""
    torch.set_num_threads(1)  # the rule runs on one core
    loaded = [(Path(p), read_torch(p, "trained model", map_location="cpu")) for p in models]
    hts_dt: dict[tuple[str, int], dict[str, list[torch.Tensor]]] = {}
    for _, ckpt in loaded:
        run = ckpt["run"]
        if not _is_uniform_dt(ckpt["network"]["dt"]):
            key = (run["dataset"]["name"], run["seed"])
            hts_dt.setdefault(key, {})[run["variant"]["name"]] = ckpt["network"]["dt"]
    probes: dict[str, torch.Tensor] = {}
    summary_rows, hist_frames, runs = [], [], []
    for path, ckpt in loaded:
        run, state = ckpt["run"], ckpt["network"]
        dataset, variant, seed = run["dataset"]["name"], run["variant"]["name"], run["seed"]
        if dataset not in probes:
            probes[dataset] = _probe(test_data[dataset], run["dataset"].get("normalize"), spec["probe_size"])
        x = probes[dataset]
        training = run["training"]
        steps = {"T1": training["free_steps"], "long": max(spec["long_steps"], training["free_steps"])}
        own_kind = "uniform" if _is_uniform_dt(state["dt"]) else "hts"
        weights_at = {int(e): (s["weights"], s["biases"]) for e, s in ckpt["snapshots"].items()}
        weights_at[int(ckpt["epoch"])] = (state["weights"], state["biases"])
        if spec.get("epochs") is not None:  # a subset of the saved epochs ("final": the last one)
            wanted = {int(ckpt["epoch"]) if e == "final" else int(e) for e in spec["epochs"]}
            weights_at = {e: w for e, w in weights_at.items() if e in wanted}
        conditions = dt_conditions(state["dt"], hts_dt.get((dataset, seed), {}), spec["swap_uniform"],
                                   spec["swap_hts"])
        keys = {"dataset": dataset, "dataset_label": dataset_label(dataset, run["dataset"]["split"]),
                "variant": variant, "variant_kind": own_kind, "seed": seed}
        for epoch in sorted(weights_at):
            weights, biases = weights_at[epoch]
            for source, kind, dt in conditions:
                net = _network(state, weights, biases, dt)
                if not _finite(net):
                    log.info("%s: epoch %d weights are not finite; skipped", path, epoch)
                    continue
                dt_all = torch.cat(net.dt)
                cond = {**keys, "epoch": epoch, "final": epoch == int(ckpt["epoch"]), "dt_source": source,
                        "dt_kind": kind, "dt_mean": float(dt_all.mean()), "dt_std": float(dt_all.std(unbiased=False))}
                summaries, hists = spectrum_rows(net, x, steps, training["residual_tol"])
                summary_rows += [{**cond, **s} for s in summaries]
                if epoch == int(ckpt["epoch"]) and source == "own":  # the histograms the figure shows
                    hist_frames += [h[h["relax"] == "T1"].assign(**cond) for h in hists]
        runs.append({"dataset": dataset, "variant": variant, "seed": seed,
                     "config": config_json({"run": run, "spectral": spectral_setting(spec)}),
                     "code_fingerprint": code_fingerprint("experiments.mechanism.spectra"),
                     "relaxation_kernel": "torch float64"})  # the spectra relax in double precision with torch ops
        log.info("%s/%s/seed%d: %d epochs x %d dt conditions", dataset, variant, seed, len(weights_at),
                 len(conditions))
    cond_columns = ["dataset", "dataset_label", "variant", "variant_kind", "seed", "epoch", "final", "dt_source",
                    "dt_kind", "dt_mean", "dt_std"]
    table = pd.DataFrame(summary_rows)
    table = table[cond_columns + [c for c in table.columns if c not in cond_columns]]
    order = ["dataset", "variant", "seed", "epoch", "dt_kind", "dt_source", "relax"]
    table = table.sort_values(order, ignore_index=True)
    hist_columns = ["relax", "part", "bin_low", "bin_high", "count"]
    hist = pd.concat(hist_frames, ignore_index=True) if hist_frames else pd.DataFrame(
        columns=cond_columns + hist_columns)  # e.g. mechanism.spectral.epochs without the final one
    hist = hist[cond_columns + [c for c in hist.columns if c not in cond_columns]]
    write_table(outputs["runs"], pd.DataFrame(runs))
    write_table(outputs["spectral"], table)
    write_table(outputs["hist"], hist)


def merge_spectra(records: Mapping[str, Sequence[str]], shard: Mapping[str, str], outputs: Mapping[str, str],
                  declared: Sequence[Sequence]) -> None:
    """The spectral tables of the committed mechanism shards and this invocation's, each declared run once
    (htsep.records): the spectral table (parquet and CSV), the eigenvalue histograms and the provenance."""
    tables = merge_experiment(records, shard, KEYS, declared, "mechanism spectra")
    write_provenance(outputs["provenance"], {"runs": tables["runs"]}, "mechanism spectra")
    write_table(outputs["table"], tables["spectral"])
    write_table(outputs["table_csv"], tables["spectral"])
    write_table(outputs["hist"], tables["hist"])
