"""The paper's depth section (``paper/generated/depth.tex``, from ``templates/depth.tex.j2``) and the abstract's depth
sentence (``depth_abstract.tex``), from the depth search's selection and the depth tables
(htsep.experiments.depth.analysis): the protocol and T1 levels the validation data chose, each arm's accuracy and
failures at both T1, the paired tests with their resolutions, the prediction written before the runs and what depth
changes."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ...config import N_CLASSES, N_PIXELS, dataset_label
from ...files import read_json, read_table, write_text
from ...paired import BEYOND
from ...report.tex import template, tex_escape
from .analysis import family_size

TEMPLATE = Path(__file__).with_name("templates") / "depth.tex.j2"
ABSTRACT = TEMPLATE.with_name("depth_abstract.tex.j2")


def depth_text(inputs: Mapping[str, str], outputs: Mapping[str, str], params: Mapping) -> None:
    """Write the section and the abstract's sentence (``outputs``: section, abstract) from the selection, search, cells
    and tests tables."""
    spec = params["depth"]
    selection = read_json(inputs["selection"], "depth selection")
    search = read_table(inputs["search"], "depth search table")
    cells = read_table(inputs["cells"], "depth cells")
    tests = read_table(inputs["tests"], "depth tests")
    levels = {t1: role for role, t1 in spec["free_steps"]["levels"].items()}
    parts = []
    for (dataset, free_steps), own in cells.groupby(["dataset", "free_steps"], sort=True):
        rows = tests[(tests["dataset"] == dataset) & (tests["free_steps"] == free_steps)]
        contrasts = []
        for name in spec["contrasts"]:
            by_test = {r["test"]: r for r in rows[rows["contrast"] == name].to_dict("records")}
            if by_test:
                contrasts.append({"name": tex_escape(name), **{k: v for k, v in by_test.items()}})
        parts.append({"label": tex_escape(own["dataset_label"].iloc[0]), "free_steps": int(free_steps),
                      "role": levels.get(int(free_steps), ""), "arms": own.to_dict("records"),
                      "contrasts": contrasts})
    means = selection["means"]
    n_pairs = int(tests.loc[tests["test"] == "accuracy", "n_pairs"].max()) if len(tests) else 0
    family = family_size(spec["datasets"], levels, spec["contrasts"])
    floor = {"n_pairs": n_pairs, "p": 2 / 2 ** n_pairs if n_pairs else 1.0, "level": spec["alpha"] / family}
    n_seeds = int(cells["n_runs"].max()) if len(cells) else 0  # per arm, as recorded
    sizes = "-".join(str(n) for n in [N_PIXELS, *spec["hidden"], N_CLASSES])
    write_text(outputs["abstract"], template(ABSTRACT).render(
        parts=parts, sizes=sizes, n_seeds=n_seeds, declared=len(spec["seeds"]),
        labels=[tex_escape(label) for label in dict.fromkeys(cells["dataset_label"])]))
    write_text(outputs["section"], template(TEMPLATE).render(
        spec=spec, training=params["training"], selection=selection, caption=tex_escape(params["caption"]), parts=parts,
        sizes=sizes, beyond=BEYOND,
        points=[{"name": tex_escape(p), "acc": means[p]} for p in search["point"].drop_duplicates()],
        shares=selection["free_steps"]["shares"], prediction=tex_escape(spec["prediction"]),
        extension=tex_escape(spec.get("extension") or ""),
        outcome=tex_escape(spec.get("outcome") or ""), n_runs=int(cells["n_runs"].sum()) if len(cells) else 0,
        n_seeds=n_seeds, floor=floor, search_label=dataset_label(spec["search"]["dataset"])))
