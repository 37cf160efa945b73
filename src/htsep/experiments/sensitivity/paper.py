"""The paper's sensitivity section (``paper/generated/sensitivity.tex``), written by ``templates/sensitivity.tex.j2``
from the sensitivity tables (htsep.experiments.sensitivity.analysis): per axis its prediction (written before the
runs), the contrast of heterogeneity at each level beside the positive control, and what the design could have
found."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ...files import read_table, write_text
from ...report.tex import template, tex_escape
from .plots import AXIS_LABELS

TEMPLATE = Path(__file__).with_name("templates") / "sensitivity.tex.j2"


def sensitivity_text(inputs: Mapping[str, str], output: str | Path, params: Mapping) -> None:
    """Write ``paper/generated/sensitivity.tex`` from the cells, contrasts and mixed-model tables."""
    cells = read_table(inputs["cells"], "sensitivity cells")
    contrasts = read_table(inputs["contrasts"], "sensitivity contrasts")
    models = read_table(inputs["models"], "sensitivity models")
    spec = params["sensitivity"]
    labels = dict(zip(cells["dataset"], cells["dataset_label"], strict=False)) if len(cells) else {}
    axes = []
    for axis in spec["run_axes"]:
        parts = []
        for dataset in [d for d in labels if ((cells["dataset"] == d) & (cells["axis"] == axis)).any()]:
            own = contrasts[(contrasts["dataset"] == dataset) & (contrasts["axis"] == axis)]
            model = models[(models["dataset"] == dataset) & (models["axis"] == axis)]
            failed = cells[(cells["dataset"] == dataset) & (cells["axis"] == axis) & (cells["n_failed"] > 0)]
            parts.append({
                "label": tex_escape(labels[dataset]),
                "rows": own[own["kind"] == "contrast"].to_dict("records"),
                "control": own[own["kind"] == "positive_control"].to_dict("records"),
                "interaction": model.to_dict("records")[0] if len(model) else None,
                "failed": [{"variant": tex_escape(r["variant"]), "level": r["level"], "k": int(r["n_failed"]),
                            "n": int(r["n_runs"])} for r in failed.to_dict("records")],
            })
        axes.append({"name": tex_escape(AXIS_LABELS.get(axis, axis)),
                     "prediction": tex_escape(spec["axes"][axis]["prediction"]),
                     "outcome": tex_escape(spec["axes"][axis].get("outcome") or ""),
                     "levels": spec["axes"][axis]["levels"], "value": params["protocol_values"][axis],
                     "datasets": parts})
    write_text(output, template(TEMPLATE).render(
        axes=axes, spec=spec, caption=tex_escape(params["caption"]), protocol=tex_escape(spec["protocol"]),
        contrast={k: tex_escape(v) for k, v in spec["contrast"].items()},
        control={k: tex_escape(str(labels.get(v, v) if k == "dataset" else v))
                 for k, v in spec["positive_control"].items()},
        n_runs=int(cells["n_runs"].sum()) if len(cells) else 0))
