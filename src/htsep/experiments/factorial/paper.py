"""The paper's factorial section (``paper/generated/factorial.tex``), written by ``templates/factorial.tex.j2`` from
the factorial's effects and failures (htsep.experiments.factorial.analysis): the effect of the dt mean (damping)
and of the spread at a matched mean, each with its CI and the smallest effect it would find."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from ...files import read_table, write_text
from ...report.tex import template, tex_escape

TEMPLATE = Path(__file__).with_name("templates") / "factorial.tex.j2"


def factorial_text(inputs: Mapping[str, str], output: str | Path, params: Mapping) -> None:
    """Write ``paper/generated/factorial.tex`` from the effects and failures tables."""
    effects = read_table(inputs["effects"], "factorial effects")
    failures = read_table(inputs["failures"], "factorial failures")
    runs = read_table(inputs["runs"], "factorial runs")
    spec = params["factorial"]
    datasets = []
    for dataset, own in runs.groupby("dataset", sort=False):
        rows = effects[effects["dataset"] == dataset] if len(effects) else effects
        failed = failures[(failures["dataset"] == dataset) & (failures["n_failed"] > 0)]
        datasets.append({
            "label": tex_escape(own["dataset_label"].iloc[0]), "n_runs": len(own), "n_seeds": own["seed"].nunique(),
            "rows": [{**r, "what": _what(r, spec["reference_mean"])} for r in rows.to_dict("records")],
            "averaged": [r for r in rows.to_dict("records") if r["effect"] == "spread" and pd.isna(r["dt_mean"])],
            "failed": [{"variant": tex_escape(r["variant"]), "k": int(r["n_failed"]), "n": int(r["n_runs"])}
                       for r in failed.to_dict("records")],
            "realised_gap": float((own["realised_dt_mean"] - own["dt_mean"]).abs().max()),
        })
    write_text(output, template(TEMPLATE).render(
        datasets=datasets, spec=spec, caption=tex_escape(params["caption"]),
        means=sorted({float(m) for m in runs["dt_mean"]}), spreads=sorted({float(s) for s in runs["dt_spread"]}),
        protocol=tex_escape(spec["protocol"])))


def _what(row: Mapping, reference: float) -> str:
    if row["effect"] == "mean":
        return f"uniform {row['dt_mean']:g} $-$ uniform {reference:g}"
    where = "averaged over means" if pd.isna(row["dt_mean"]) else f"at mean {row['dt_mean']:g}"
    return f"spread {row['dt_spread']:g} $-$ none, {where}"
