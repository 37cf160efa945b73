"""The paper's provenance appendix (``paper/generated/provenance.tex``): per experiment, which committed records and
which of this invocation's runs its numbers come from, with their code fingerprints and kernel builds (the
provenance tables each analysis writes, htsep.records)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ..files import read_table, write_text
from ..records import THIS_RUN
from .tex import template, tex_escape

TEMPLATE = Path(__file__).with_name("templates") / "provenance.tex.j2"
EXPERIMENTS = {"grid": "Grid", "calibration": "Calibration", "mechanism spectra": "Mechanism: spectra",
               "mechanism landscape": "Mechanism: dt landscape", "frontier": "Stability frontier",
               "confirmatory": "Confirmatory tests", "factorial": "Factorial: dt mean x spread",
               "robustness": "Robustness", "sensitivity": "Sensitivity: where dt acts"}


def _record(record: str, root: str) -> str:
    """A record as the appendix names it: this invocation, or the shard's path below the records root."""
    return record if record == THIS_RUN or not record.startswith(root) else record[len(root):].lstrip("/")


def provenance_text(tables: Sequence[str | Path], output: str | Path, root: str) -> None:
    """Write the appendix from the analyses' provenance tables (``root``: config key records.root)."""
    frames = [read_table(path, "provenance table") for path in tables]
    rows = pd.concat([f for f in frames if len(f)], ignore_index=True) if any(len(f) for f in frames) else \
        pd.DataFrame(columns=["experiment", "record", "n_rows", "code_fingerprints", "relaxation_kernels"])
    sections = []
    for key, title in EXPERIMENTS.items():
        own = rows[rows["experiment"] == key]
        sections.append({"title": title, "rows": [
            {"record": tex_escape(_record(r["record"], root)), "table": tex_escape(r["table"]), "n": int(r["n_rows"]),
             "fingerprints": tex_escape(r["code_fingerprints"] or "--"),
             "kernels": tex_escape(r["relaxation_kernels"] or "--")} for _, r in own.fillna("").iterrows()]})
    write_text(output, template(TEMPLATE).render(sections=sections, root=tex_escape(root)))
