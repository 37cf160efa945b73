"""The paper's Confirmatory tests section (``paper/generated/confirmatory.tex``), written by the template
``templates/confirmatory.tex.j2`` from the primary tests (htsep.experiments.confirmatory.primary) and the
preregistration: per protocol and dataset, each contrast's paired effects with CIs, Holm-adjusted p-values,
verdicts and the resolution of each test."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from ... import paired
from ...config import dataset_label
from ...files import read_table, write_text
from ...report.style import variant_labels
from ...report.tex import template, tex_escape
from .plan import family

TEMPLATES = Path(__file__).with_name("templates")


def abstract_cells(tests: pd.DataFrame, labels: Mapping[str, str], order: Mapping[str, Sequence[str]]) -> list[dict]:
    """Per protocol and dataset with a recorded pair, in the declared order (``order``: protocol -> dataset labels):
    the number of pairs and each contrast's accuracy and spread tests, for the abstract's sentences. ``name`` is the
    dataset's short name, ``split`` what its label adds (e.g. 'test-set holdout')."""
    rank = {(p, d): (i, j) for i, (p, datasets) in enumerate(order.items()) for j, d in enumerate(datasets)}
    cells = []
    for (protocol, label), own in tests.groupby(["protocol", "dataset_label"], sort=False):
        pairs = own.loc[(own["test"] == "failures") & (own["n_pairs"] > 0), "n_pairs"]
        if pairs.empty:  # named among the unrecorded cells
            continue
        contrasts = []
        for name, rows in own.groupby("contrast", sort=False):
            by_test = rows.set_index("test")
            contrasts.append({"name": name, "baseline": labels.get(rows["baseline"].iloc[0],
                                                                    tex_escape(rows["baseline"].iloc[0])),
                              "baseline_protocol": rows["baseline_protocol"].iloc[0],
                              "accuracy": by_test.loc["accuracy"].to_dict(), "spread": by_test.loc["spread"].to_dict()})
        name = dataset_label(own["dataset"].iloc[0])
        cells.append({"protocol": tex_escape(protocol), "raw_protocol": protocol, "dataset": tex_escape(label),
                      "name": tex_escape(name), "split": tex_escape(label[len(name):].strip(" ()")),
                      "n_pairs": int(pairs.min()), "contrasts": contrasts,
                      "rank": rank.get((protocol, label), (len(rank), len(rank)))})
    return sorted(cells, key=lambda c: c["rank"])


VERDICT_ORDER = ("higher", "lower", "equivalent", "inconclusive", "untestable")


def verdict_groups(cells: Sequence[dict], test: str) -> list[dict]:
    """One contrast's ``test`` ('accuracy' or 'spread') over its cells, grouped by verdict (most frequent first): the
    cells of each group by protocol, the range of their effects and of their resolutions, and how many tests resolve
    no effect up to the largest simulated (``n_beyond``). An untestable group has no effects."""
    groups = []
    for verdict in VERDICT_ORDER:
        own = [c for c in cells if c["test"][test]["verdict"] == verdict]
        if not own:
            continue
        protocols = {}
        for c in own:
            protocols.setdefault(c["protocol"], []).append(c["name"])
        effects = [e for c in own if (e := c["test"][test]["effect"]) == e]
        resolved = [d for c in own if (d := c["test"][test]["detectable"]) == d]
        groups.append({"verdict": verdict, "n": len(own), "all": len(own) == len(cells),
                       "where": "; ".join(f"{p}: {and_join(d)}" for p, d in protocols.items()),
                       "effects": (min(effects), max(effects)) if effects and verdict != "untestable" else None,
                       "resolution": (min(resolved), max(resolved)) if resolved else None,
                       "n_beyond": len(own) - len(resolved)})
    return sorted(groups, key=lambda g: -g["n"])


def abstract_contrasts(cells: Sequence[dict], contrasts: Sequence[dict]) -> list[dict]:
    """The abstract's sentences, one per contrast (in the preregistration's order): its recorded cells (protocol x
    dataset) and their accuracy and spread verdicts, grouped (``verdict_groups``)."""
    summaries = []
    for contrast in contrasts:
        own = [{**cell, "test": test} for cell in cells for test in cell["contrasts"]
               if test["name"] == contrast["raw_name"]]
        summaries.append({**contrast, "cells": own, "accuracy": verdict_groups(own, "accuracy"),
                          "spread": verdict_groups(own, "spread")})
    return summaries


def unrecorded_cells(tests: pd.DataFrame, cells: Mapping[str, Sequence[str]]) -> list[dict]:
    """Per protocol, the declared datasets (``cells``: protocol -> dataset labels) without a recorded pair."""
    paired_runs = tests[tests["n_pairs"] > 0]
    recorded = set(zip(paired_runs["protocol"], paired_runs["dataset_label"], strict=True))
    missing = [{"protocol": tex_escape(p), "datasets": [tex_escape(d) for d in labels if (p, d) not in recorded]}
               for p, labels in cells.items()]
    return [{**cell, "datasets": and_join(cell["datasets"])} for cell in missing if cell["datasets"]]


def and_join(items: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return " and ".join([", ".join(items[:-1]), items[-1]] if len(items) > 1 else items)


def confirmatory_text(inputs: Mapping[str, str], outputs: Mapping[str, str], params: Mapping) -> None:
    """Write the section (``paper/generated/confirmatory.tex``) and the abstract's sentences
    (``confirmatory_abstract.tex``) from the primary tests table; tests with fewer pairs than the declared seeds, and
    declared (protocol, dataset) cells with none, are named as interim."""
    tests = read_table(inputs["tests"], "primary tests table")
    missing = unrecorded_cells(tests, params["cells"])
    labels = variant_labels(params["variants"], tex=True)
    spec = params["preregistration"]
    rows = []
    for _, row in tests.iterrows():
        rows.append({**row.to_dict(), "dataset_label": tex_escape(row["dataset_label"]),
                     "protocol": tex_escape(row["protocol"]), "contrast": tex_escape(row["contrast"]),
                     "variant_label": labels.get(row["variant"], tex_escape(row["variant"])),
                     "baseline_label": labels.get(row["baseline"], tex_escape(row["baseline"]))})
    contrasts = [{"name": tex_escape(name), "raw_name": name,
                  "variant": labels.get(c["variant"], tex_escape(c["variant"])),
                  "baseline": labels.get(c["baseline"], tex_escape(c["baseline"])),
                  "baseline_protocol": tex_escape(c.get("baseline_protocol") or ""), "family": family(c)}
                 for name, c in spec["contrasts"].items()]
    variants = {c["variant"] for c in spec["contrasts"].values()}
    cells = abstract_cells(tests, labels, params["cells"])
    splits = {c["name"]: c["split"] for c in cells if c["split"]}
    write_text(outputs["abstract"], template(TEMPLATES / "confirmatory_abstract.tex.j2").render(
        cells=cells, contrasts=abstract_contrasts(cells, contrasts), n_seeds=len(spec["seeds"]), missing=missing,
        interim=[c for c in cells if c["n_pairs"] < len(spec["seeds"])], beyond=paired.BEYOND,
        pairs=(min(c["n_pairs"] for c in cells), max(c["n_pairs"] for c in cells)) if cells else None, splits=splits,
        variant=" and ".join(labels.get(v, tex_escape(v)) for v in sorted(variants))))
    write_text(outputs["section"], template(TEMPLATES / "confirmatory.tex.j2").render(
        rows=rows, contrasts=contrasts, spec=spec, n_seeds=len(spec["seeds"]), caption=tex_escape(params["caption"]),
        missing=missing, beyond=paired.BEYOND,
        seeds=(min(spec["seeds"]), max(spec["seeds"])) if spec["seeds"] else None))
