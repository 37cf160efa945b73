"""The numbers and data-worded claims of the paper's Mechanism section (``paper/mechanism.tex``).

``mechanism_macros`` writes ``paper/generated/mechanism.tex`` from the template ``templates/mechanism.tex.j2``
(the words) and the mechanism tables (``results/mechanism/*`` and the grid's epochs table): this module computes
the values the template shows, such as medians over runs, break counts, which dt swaps and settings there are, and
how the heterogeneous runs compare with the uniform ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from ...files import read_table, write_text
from ...report.style import variant_labels
from ...report.tex import template, tex_escape

TEMPLATE = Path(__file__).with_name("templates") / "mechanism.tex.j2"

# (macro tag, spectral table column): the measures quoted per group of runs
MEASURES = (("Rho", "rho_median"), ("Slow", "coupled_max_mean"), ("Coupling", "coupling_max_mean"),
            ("FracFixed", "frac_fixed"), ("Steps", "relax_steps_to_tol"))


def _median(frame: pd.DataFrame, column: str) -> float:
    return float(frame[column].median()) if len(frame) else math.nan


def _mean(frame: pd.DataFrame, column: str) -> float:
    return float(frame[column].mean()) if len(frame) else math.nan


def direction(a: float, b: float, rel: float = 1e-3) -> str:
    """'lower than' / 'higher than' / 'the same as' for a compared with b (equal within ``rel`` of b's magnitude)."""
    if not (np.isfinite(a) and np.isfinite(b)):
        return "not comparable with"
    if abs(a - b) <= rel * max(abs(b), 1e-12):
        return "the same as"
    return "lower than" if a < b else "higher than"


def spectral_values(spectral: pd.DataFrame, spec: Mapping, analysis: Mapping, label: Callable[[str], str]) -> dict:
    """The spectra at the end of training (state after T1 steps) on the primary dataset, per group of runs."""
    final = spectral[spectral["final"] & (spectral["relax"] == "T1")]
    own = final[final["dt_source"] == "own"]
    primary = spec["datasets"][0]
    p_own = own[own["dataset"] == primary]
    hts = p_own[p_own["variant_kind"] == "hts"]
    ref_name, matched_name = analysis["reference"], analysis["mean_matched"]
    groups = {"Ref": p_own[p_own["variant"] == ref_name], "Matched": p_own[p_own["variant"] == matched_name]}
    measures = []
    for tag, column in MEASURES:
        hts_value = _median(hts, column)
        measures.append({
            "tag": tag, "hts": hts_value,
            "groups": [{"tag": group, "value": _median(frame, column),
                        "direction": direction(hts_value, _median(frame, column))} for group, frame in groups.items()],
            "variants": [{"name": name, "value": _median(p_own[p_own["variant"] == name], column)}
                         for name in spec["variants"] if (p_own["variant"] == name).any()],
        })
    any_rows = len(spectral) > 0
    return {
        "primary": p_own["dataset_label"].iloc[0] if len(p_own) else primary,
        "dataset_labels": sorted(set(spectral["dataset_label"])),
        "n_runs": spectral[["dataset", "variant", "seed"]].drop_duplicates().shape[0],
        "epochs": sorted(set(spectral["epoch"])),
        "ref_label": label(ref_name), "matched_label": label(matched_name),
        "measures": measures, "n_group_runs": {group: frame["seed"].nunique() for group, frame in groups.items()},
        "hts_variants": set(hts["variant"]), "n_hts_runs": hts[["variant", "seed"]].drop_duplicates().shape[0],
        "frac_unstable": float((final["frac_rho_ge_1"] > 0).mean()) if len(final) else math.nan,
        "max_frac_rho_ge_1": final["frac_rho_ge_1"].max() if len(final) else math.nan,
        "frac_coupling_ge_1": own["frac_coupling_ge_1"].mean() if len(own) else math.nan,
        "frac_decoupled": p_own["frac_decoupled"].median() if len(p_own) else math.nan,
        "min_lambda_min": spectral["lambda_min_min"].min() if any_rows else math.nan,
        "coupled_min_min": spectral["coupled_min_median"].min() if any_rows else math.nan,
        "n_oscillatory": int((spectral["frac_lambda_below_minus1"] > 0).sum()) if any_rows else 0,
        "n_conditions": len(spectral),
        "swaps": swap_values(final[final["dataset"] == primary], spec, label),
    }


def swap_values(final: pd.DataFrame, spec: Mapping, label: Callable[[str], str]) -> list[dict]:
    """Own vs swapped dt of the final weights: the HTS runs with each uniform dt, then each uniform variant's runs
    with the dt of the HTS runs of the same seed (pooled over HTS variants); per measure (own, swapped): medians
    over the runs that have both (settle time: means)."""
    cases = [({"hts_weights": True, "uniform": source.split()[1]}, final[final["variant_kind"] == "hts"], [source])
             for source in sorted({s for s in final["dt_source"] if s.startswith("uniform ")})]
    hts_sources = sorted({s for s in final.loc[final["dt_kind"] == "hts", "dt_source"]})
    uniform_weights = set(final.loc[final["variant_kind"] == "uniform", "variant"])
    cases += [({"hts_weights": False, "label": label(name)}, final[final["variant"] == name], hts_sources)
              for name in spec["variants"] if name in uniform_weights]
    swaps = []
    for case, weights, sources in cases:
        base = weights[weights["dt_source"] == "own"]
        pairs = base.merge(weights[weights["dt_source"].isin(sources)], on=["variant", "seed"],
                           suffixes=("_own", "_swap"))
        if pairs.empty:
            continue
        swaps.append({**case, "n_runs": base[["variant", "seed"]].drop_duplicates().shape[0],
                      "slow": [pairs[f"coupled_max_mean_{side}"].median() for side in ("own", "swap")],
                      "rho": [pairs[f"rho_median_{side}"].median() for side in ("own", "swap")],
                      "settle": [pairs[f"relax_steps_to_tol_{side}"].mean() for side in ("own", "swap")],
                      "fixed": [pairs[f"frac_fixed_{side}"].median() for side in ("own", "swap")]})
    return swaps


def relaxation_values(epochs: pd.DataFrame, primary: str, hts_names: set[str], analysis: Mapping) -> dict:
    """The free relaxation at the last epoch of the grid runs (on ``primary`` if it has any): the heterogeneous runs
    (``hts_names``, those of the spectra) vs the two uniform controls."""
    epochs = epochs[~epochs["diverged"].astype(bool)]
    last = epochs[epochs["epoch"] == epochs.groupby(["dataset", "variant", "seed"])["epoch"].transform("max")]
    last_p = last[last["dataset"] == primary] if primary in set(last["dataset"]) else last
    frames = {"HTS": last_p[last_p["variant"].isin(hts_names)],
              "Ref": last_p[last_p["variant"] == analysis["reference"]],
              "Matched": last_p[last_p["variant"] == analysis["mean_matched"]]}
    groups = [{"tag": tag, "settle": _mean(frame, "relax_steps_to_tol"),
               "unconverged": _mean(frame, "relax_unconverged_frac"), "oscillation": _mean(frame, "relax_oscillation")}
              for tag, frame in frames.items()]
    return {"groups": groups, "settle_vs": [{"tag": tag, "direction": direction(groups[0]["settle"], group["settle"])}
                                            for tag, group in zip(("Ref", "Matched"), groups[1:], strict=True)]}


def dead_unit_values(epochs: pd.DataFrame, protocols: list[str], variants: list[str], alpha: float,
                     label: Callable[[str], str]) -> dict:
    """Per grid protocol (in the order of ``protocols``), at the end of training: runs with a class never
    predicted (per variant), the mean share of output units that get no EP update (measured, and by the analytic
    criterion), and per dataset whether the share of such runs depends on the dt variant (chi-square test of
    variant x dead class, where both occur)."""
    out_layer = max(int(c.removeprefix("dead_frac_l")) for c in epochs.columns if c.startswith("dead_frac_l"))
    grid = epochs[epochs["protocol"].isin(protocols)]
    last = grid[grid["epoch"] == grid.groupby(["protocol", "dataset", "variant", "seed"])["epoch"].transform("max")]
    last = last.assign(dead=(last["classes_never_predicted"] > 0) & ~last["diverged"].astype(bool))
    found = []
    for protocol, rows in last.groupby("protocol"):
        tests = []
        for dataset, own in rows.groupby("dataset_label"):
            table = pd.crosstab(own["variant"], own["dead"])
            if table.shape[1] == 2 and table.shape[0] > 1:
                tests.append({"dataset": dataset, "p": float(sps.chi2_contingency(table.to_numpy()).pvalue)})
        found.append({
            "name": protocol, "n_runs": len(rows), "n_dead": int(rows["dead"].sum()),
            "variants": [{"label": label(v), "n_dead": int(rows.loc[rows["variant"] == v, "dead"].sum()),
                          "n_runs": int((rows["variant"] == v).sum())}
                         for v in variants if (rows["variant"] == v).any()],
            "out_dead": _mean(rows, f"dead_frac_l{out_layer}"), "out_analytic": _mean(rows, "out_dead_analytic_frac"),
            "hidden_dead": float(np.mean([_mean(rows, f"dead_frac_l{layer}") for layer in range(1, out_layer)])),
            "tests": tests, "differs": [t["dataset"] for t in tests if t["p"] < alpha],
        })
    return {"protocols": sorted(found, key=lambda p: protocols.index(p["name"]))}


def landscape_values(land: pd.DataFrame) -> dict:
    """Best and worst cell, the gain of some spread over uniform dt per mean, and where runs broke."""
    finite = land[np.isfinite(land["acc_mean"])]
    gains = []
    for mean, group in land.groupby("mean"):
        base, spread = group[group["std"] == 0], group[group["std"] > 0]
        if base.empty or spread.empty:
            continue
        uniform_acc = float(base["acc_mean"].iloc[0])
        if spread["acc_mean"].notna().any() and np.isfinite(uniform_acc):
            best_spread = float(spread.loc[spread["acc_mean"].idxmax(), "acc_mean"])
            gains.append({"mean": mean, "gain": best_spread - uniform_acc})
    return {
        "dataset": land["dataset_label"].iloc[0] if len(land) else None,
        "n_runs": int(land["n_runs"].sum()) if len(land) else 0,
        "n_broke": int(land["n_broke"].sum()) if len(land) else 0,
        "best": finite.loc[finite["acc_mean"].idxmax()].to_dict() if len(finite) else None,
        "worst": finite.loc[finite["acc_mean"].idxmin()].to_dict() if len(finite) else None,
        "gains": gains, "n_better": sum(g["gain"] > 0 for g in gains),
        "largest": max(gains, key=lambda g: abs(g["gain"])) if gains else None,
        "n_cells": len(land), "broke": land[land["n_broke"] > 0].to_dict("records"),
    }


def mechanism_macros(inputs: Mapping[str, str], output: str | Path, params: Mapping) -> None:
    """Write ``paper/generated/mechanism.tex``: every number and claim of the Mechanism section, from the tables."""
    labels = variant_labels(params["variants"], tex=True)

    def label(name: str) -> str:
        return labels.get(name, tex_escape(name))

    spec, analysis = params["spectral"], params["analysis"]
    spectral = spectral_values(read_table(inputs["spectral"], "spectral table"), spec, analysis, label)
    epochs = pd.concat([read_table(path, "epochs table") for path in inputs["epochs"]], ignore_index=True)
    text = template(TEMPLATE).render(
        spec=spec, landscape_config=params["landscape"], spectral=spectral,
        relaxation=relaxation_values(epochs[epochs["protocol"] == spec["protocol"]], spec["datasets"][0],
                                     spectral["hts_variants"], analysis),
        dead=dead_unit_values(epochs, params["run_protocols"], [v["name"] for v in params["variants"]],
                              analysis["alpha"], label),
        alpha=analysis["alpha"],
        landscape=landscape_values(read_table(inputs["landscape"], "landscape table")),
    )
    write_text(output, text)
