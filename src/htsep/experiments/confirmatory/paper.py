"""The paper's Confirmatory tests section (``paper/generated/confirmatory.tex``), written by the template
``templates/confirmatory.tex.j2`` from the primary tests (htsep.experiments.confirmatory.primary) and the
preregistration: per protocol and dataset, each contrast's paired effects with CIs, Holm-adjusted p-values,
verdicts and the resolution of each test."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ...files import read_table, write_text
from ...report.style import variant_labels
from ...report.tex import template, tex_escape

TEMPLATE = Path(__file__).with_name("templates") / "confirmatory.tex.j2"


def confirmatory_text(inputs: Mapping[str, str], output: str | Path, params: Mapping) -> None:
    """Write ``paper/generated/confirmatory.tex`` from the primary tests table."""
    tests = read_table(inputs["tests"], "primary tests table")
    labels = variant_labels(params["variants"], tex=True)
    spec = params["preregistration"]
    rows = []
    for _, row in tests.iterrows():
        rows.append({**row.to_dict(), "dataset_label": tex_escape(row["dataset_label"]),
                     "protocol": tex_escape(row["protocol"]), "contrast": tex_escape(row["contrast"]),
                     "variant_label": labels.get(row["variant"], tex_escape(row["variant"])),
                     "baseline_label": labels.get(row["baseline"], tex_escape(row["baseline"]))})
    contrasts = [{"name": tex_escape(name), "variant": labels.get(c["variant"], tex_escape(c["variant"])),
                  "baseline": labels.get(c["baseline"], tex_escape(c["baseline"]))}
                 for name, c in spec["contrasts"].items()]
    write_text(output, template(TEMPLATE).render(
        rows=rows, contrasts=contrasts, spec=spec, n_seeds=len(spec["seeds"]), caption=tex_escape(params["caption"]),
        seeds=(min(spec["seeds"]), max(spec["seeds"])) if spec["seeds"] else None))
