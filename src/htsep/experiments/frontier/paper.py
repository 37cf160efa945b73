"""The paper's Stability frontier section (``paper/generated/frontier.tex``), written by the template
``templates/frontier.tex.j2`` from the frontier's tables (``htsep.experiments.frontier.stats``) and its config: the
design, each variant's critical level, the likelihood-ratio test of the variant terms with the sweep's resolution, and
how and when runs failed. Every sentence about the result is read from the tables."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from ...files import read_table, write_text
from ...report.style import variant_labels
from ...report.tex import template, tex_escape
from .plots import KIND_LABELS

TEMPLATE = Path(__file__).with_name("templates") / "frontier.tex.j2"


def panel_values(fit: pd.Series, critical: pd.DataFrame, cells: pd.DataFrame, spec: Mapping, label) -> dict:
    """One (dataset, axis): critical levels (the positive control's too), LR test, resolution, and the tested
    variants' failure kinds and onsets."""
    own_cells = cells[(cells["dataset"] == fit["dataset"]) & (cells["axis"] == fit["axis"])
                      & cells["variant"].isin(spec["variants"])]
    kinds = [{"label": KIND_LABELS[k], "n": int(own_cells[f"n_kind_{k}"].sum())}
             for k in spec["failure"]["criteria"] if own_cells.get(f"n_kind_{k}", pd.Series(dtype=int)).sum() > 0]
    rows = critical[(critical["dataset"] == fit["dataset"]) & (critical["axis"] == fit["axis"])]
    return {
        "dataset": tex_escape(fit["dataset_label"]), "axis": tex_escape(fit["axis"]),
        "key": tex_escape(spec["axes"][fit["axis"]]["key"]),
        "levels": [f"$\\times{lv}$" if spec["axes"][fit["axis"]]["mode"] == "scale" else f"${lv}$"
                   for lv in fit["levels"].split()],
        "n_runs": int(fit["n_runs"]), "n_failed": int(fit["n_failed"]),
        "seeds": (int(fit["n_seeds_min"]), int(fit["n_seeds_max"])),
        "critical": [{"label": label(r["variant"]), "text": tex_escape(r["text"]).replace(">", "$>$")
                      .replace("<", "$<$"), "status": r["status"]} for r in rows.to_dict("records")],
        "lr_stat": fit["lr_stat"], "lr_df": int(fit["lr_df"]), "lr_p": fit["lr_p"],
        "significant": bool(fit["lr_p"] < spec["alpha"]), "separated": isinstance(fit["separated"], str),
        "shift": fit["detectable_shift_factor"], "kinds": kinds, "p_kind": fit["p_kind"], "p_onset": fit["p_onset"],
        "onset_tested": not math.isnan(fit["p_onset"]),  # untestable when every onset is the same epoch
        "onsets": [{"label": label(v), "epoch": fit.get(f"onset_median_{v}", math.nan)}
                   for v in spec["variants"] if f"onset_median_{v}" in fit],
        "control": _control_values(fit, spec, label),
    }


def _control_values(fit: pd.Series, spec: Mapping, label) -> dict | None:
    """The positive control of one (dataset, axis): its LR test and critical-level ratio, or None if not trained."""
    if not isinstance(fit.get("control_variant"), str):
        return None
    return {"label": label(fit["control_variant"]), "baseline": label(fit["control_baseline"]),
            "n_runs": int(fit["control_n_runs"]), "n_failed": int(fit["control_n_failed"]),
            "lr_stat": fit["control_lr_stat"], "lr_df": int(fit["control_lr_df"]), "lr_p": fit["control_lr_p"],
            "found": bool(fit["control_lr_p"] < spec["alpha"]), "ratio": fit["control_ratio"],
            "low": fit["control_ratio_low"], "high": fit["control_ratio_high"]}


def frontier_text(inputs: Mapping[str, str], output: str | Path, params: Mapping) -> None:
    """Write ``paper/generated/frontier.tex`` from the frontier tables."""
    spec = params["frontier"]
    labels = variant_labels(params["variants"], tex=True)

    def label(name: str) -> str:
        return labels.get(name, tex_escape(name))

    fits, critical, cells = (read_table(inputs[k], f"frontier {k} table") for k in ("fits", "critical", "cells"))
    panels = [panel_values(fit, critical, cells, spec, label) for _, fit in fits.iterrows()]
    control = spec.get("positive_control")
    control = control and {"variant": label(control["variant"]), "baseline": label(control["baseline"]),
                           "prediction": control["prediction"], "outcome": control.get("outcome")}
    write_text(output, template(TEMPLATE).render(
        spec=spec, panels=panels, positive_control=control, caption=tex_escape(params["caption"]),
        control=label(spec["variants"][0]),
        others=[label(v) for v in spec["variants"][1:]], protocol=tex_escape(spec["protocol"]),
        datasets=sorted({p["dataset"] for p in panels}), n_runs=sum(p["n_runs"] for p in panels),
        any_significant=any(p["significant"] for p in panels),
        kinds_differ=any(p["p_kind"] < spec["alpha"] for p in panels),
        onsets_differ=any(p["p_onset"] < spec["alpha"] for p in panels)))
