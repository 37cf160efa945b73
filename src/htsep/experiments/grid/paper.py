"""The grid's parts of the manuscript: ``write_generated`` turns the grid's tables and its configuration into
``paper/generated/*.tex``: a macros file (every number the text quotes), the variants, summary and statistics
tables, and the results, abstract and limitation sentences. The text is in this folder's templates
(``templates/<name>.tex.j2``); this module computes what they show: numbers, p-values and the direction of each
comparison, read from ``stats.csv`` (nothing is hard-coded).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from ...config import BACKPROP, dataset_label, model_slice
from ...files import read_table, write_text
from ...report.style import Order, is_uniform
from ...report.tex import missing, template, tex_escape
from .stats import TESTS, describe_dt, settings

log = logging.getLogger(__name__)

GENERATED = ("macros", "variants_table", "summary_table", "stats_table", "results", "abstract", "limitations",
             "grid_figures")
TEMPLATES = Path(__file__).with_name("templates")


# ------------------------------------------------------------------------------------------------- the study


class Study:
    """The tables and settings the generated text of one training protocol is written from, in config order
    (``backprop`` and ``gaps``: the backprop reference's summary rows and this protocol's EP-to-backprop gaps)."""

    def __init__(self, protocol: str, runs: pd.DataFrame, summary: pd.DataFrame, stats: pd.DataFrame,
                 gaps: pd.DataFrame, dt: pd.DataFrame, setup: Mapping, analysis: Mapping):
        def own(frame):
            return frame[frame["protocol"] == protocol]

        self.protocol, self.runs, self.summary, self.stats, self.gaps = protocol, own(runs), own(summary), \
            own(stats), own(gaps)
        self.backprop = summary[summary["protocol"] == BACKPROP]
        self.dt = dt[dt["protocol"] == dt["protocol"].iloc[0]] if len(dt) else dt  # dt is the same in every protocol
        self.setup, self.a = setup, settings(analysis)
        order = Order(self.runs, setup["datasets"], setup["variants"], tex=True)
        self.datasets, self.dataset_labels, self.variant_specs = order.datasets, order.dataset_labels, \
            order.variant_specs
        self.variants, self.labels = order.variants, order.labels
        self.hts = [v["name"] for v in self.variant_specs if not is_uniform(v)]
        self.alpha = float(self.a["alpha"])

    def label(self, variant: str) -> str:
        return self.labels.get(variant, tex_escape(variant))

    def dlabel(self, dataset: str) -> str:
        return tex_escape(self.dataset_labels[dataset])

    def cell(self, dataset: str, variant: str) -> pd.Series | None:
        rows = self.summary[(self.summary["dataset"] == dataset) & (self.summary["variant"] == variant)]
        return rows.iloc[0] if len(rows) else None

    def test(self, dataset: str, variant: str, baseline: str, test: str) -> pd.Series | None:
        s = self.stats
        rows = s[(s["dataset"] == dataset) & (s["variant"] == variant) & (s["baseline"] == baseline)
                 & (s["test"] == test)]
        return rows.iloc[0] if len(rows) else None

    def pairs(self, dataset: str) -> list[tuple[str, str]]:
        """(variant, baseline) pairs of ``dataset`` in stats.csv, baselines and variants in config order."""
        s = self.stats[self.stats["dataset"] == dataset]
        found = set(zip(s["variant"], s["baseline"], strict=True))
        baselines = [b for b in (self.a["reference"], self.a["mean_matched"]) if b in self.variants]
        return [(v, b) for b in baselines for v in self.variants if (v, b) in found]

    def significant(self, row: pd.Series | None) -> bool:
        return row is not None and not missing(row["p_holm"]) and row["p_holm"] < self.alpha

    def direction(self, row: pd.Series | None, higher_when_positive: bool = True) -> str:
        """'lower', 'higher', 'indistinguishable' or 'untestable' for one stats row (Holm-corrected)."""
        if row is None or missing(row["p"]):
            return "untestable"
        if not self.significant(row):
            return "indistinguishable"
        effect = row["effect_size"]
        if row["effect_name"] == "sd_ratio":
            return "lower" if effect < 1 else "higher"
        return "higher" if (effect > 0) == higher_when_positive else "lower"

    def tally(self, baseline: str, test: str) -> dict[str, int]:
        """How many (dataset, heterogeneous variant) comparisons against ``baseline`` went which way (and in all)."""
        counts = {"lower": 0, "higher": 0, "indistinguishable": 0, "untestable": 0}
        for dataset in self.datasets:
            for variant in self.hts:
                if (variant, baseline) in self.pairs(dataset):
                    counts[self.direction(self.test(dataset, variant, baseline, test))] += 1
        return counts | {"total": sum(counts.values())}


# ------------------------------------------------------------------------------ what each template is shown


def _test_values(study: Study, row: pd.Series | None) -> dict:
    """One stats row for the text: its direction, p-values, effect size, significance and note."""
    if row is None:
        return {"direction": "untestable", "p": math.nan, "p_holm": math.nan, "effect": math.nan,
                "significant": False, "note": ""}
    return {"direction": study.direction(row), "p": row["p"], "p_holm": row["p_holm"], "effect": row["effect_size"],
            "significant": study.significant(row), "note": row["note"]}


def protocol_values(study: Study) -> dict:
    """The protocol a part of the text is about: its name and how it differs from the training config."""
    overrides = study.setup["protocols"][study.protocol]
    return {"name": study.protocol, "label": tex_escape(study.protocol),
            "overrides": [{"key": tex_escape(k), "value": tex_escape(str(v))} for k, v in overrides.items()]}


def macros_values(study: Study) -> dict:
    s, runs = study.setup, study.runs
    seeds = sorted(int(seed) for seed in s["seeds"])
    model = s["model"]
    return {
        "datasets": [{"name": d, "label": study.dlabel(d)} for d in study.datasets],
        "n_variants": len(study.variants), "n_hts": len(study.hts),
        "seeds": seeds, "seeds_consecutive": len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)),
        "n_runs": len(runs), "training": s["training"], "analysis": study.a,
        "layer_sizes": model_slice(s)["sizes"], "hidden": model["hidden"],
        "activation": model.get("activation", "hard_sigmoid"),
        "reference_label": study.label(study.a["reference"]),
        "mean_matched_label": study.label(study.a["mean_matched"]),
        "n_diverged": int(runs["diverged"].sum()), "n_unstable": int(study.summary["n_unstable"].sum()),
        "n_collapsed": int(study.summary["n_collapsed"].sum()),
        "n_dead_classes": int(study.summary["n_dead_classes"].sum()),
        "hours": runs["wall_seconds"].sum() / 3600, "devices": sorted(set(runs["device"])),
        "summary": study.summary.to_dict("records"),
        "verdict": verdict_values(study),
        "protocols": [tex_escape(p) for p in s["run_protocols"]],
    }


def verdict_values(study: Study) -> dict | None:
    """The reference comparisons the verdict is read from (None without heterogeneous or reference runs)."""
    ref = study.a["reference"]
    if not study.hts or ref not in study.variants:
        return None
    return {"reference_label": study.label(ref), "variance": study.tally(ref, "brown_forsythe"),
            "accuracy": study.tally(ref, "mann_whitney")}


def variants_table_values(study: Study) -> dict:
    rows = []
    for v in study.variant_specs:
        x = study.dt.loc[study.dt["variant"] == v["name"], "dt"].to_numpy(float)
        roles = [role for role, name in (("reference", study.a["reference"]), ("mean-matched", study.a["mean_matched"]))
                 if v["name"] == name]
        dt = v["dt"]
        layers = [dt[0]] if isinstance(dt, list | tuple) and all(spec == dt[0] for spec in dt) else \
            list(dt) if isinstance(dt, list | tuple) else [dt]
        stats = describe_dt(x) if len(x) else None
        rows.append({"label": study.label(v["name"]), "roles": roles, "layers": layers, "stats": stats,
                     "provenance": tex_escape(v.get("provenance", ""))})
    return {"variants": rows}


def backprop_cell(study: Study, dataset: str) -> dict | None:
    rows = study.backprop[study.backprop["dataset"] == dataset]
    return rows.iloc[0].to_dict() if len(rows) else None


def gap_values(study: Study, dataset: str) -> dict | None:
    rows = study.gaps[study.gaps["dataset"] == dataset]
    return rows.iloc[0].to_dict() | {"reference_label": study.label(study.a["reference"])} if len(rows) else None


def summary_table_values(study: Study) -> dict:
    return {"protocol": protocol_values(study),
            "datasets": [{"label": study.dlabel(d), "backprop": backprop_cell(study, d),
                          "cells": [{"label": study.label(v), **c.to_dict()} for v in study.variants
                                    if (c := study.cell(d, v)) is not None]}
                         for d in study.datasets]}


def stats_table_values(study: Study) -> dict:
    datasets = []
    for dataset in study.datasets:
        pairs = study.pairs(dataset)
        if pairs:
            datasets.append({"label": study.dlabel(dataset), "pairs": [
                {"variant": study.label(v), "baseline": study.label(b),
                 **{test: _test_values(study, study.test(dataset, v, b, test))
                    for test in TESTS}}
                for v, b in pairs]})
    return {"protocol": protocol_values(study), "datasets": datasets}


def comparison(study: Study, dataset: str, variant: str, baseline: str) -> dict:
    """One variant against one baseline on one dataset: the summary cells and the tests the sentences quote."""
    return {"variant": study.label(variant), "baseline": study.label(baseline),
            "a": study.cell(dataset, variant).to_dict(), "b": study.cell(dataset, baseline).to_dict(),
            **{test: _test_values(study, study.test(dataset, variant, baseline, test))
               for test in TESTS}}


def results_values(study: Study) -> dict:
    datasets = []
    for dataset in study.datasets:
        cells = [{"label": study.label(v), **c.to_dict()} for v in study.variants
                 if (c := study.cell(dataset, v)) is not None]
        best = max(cells, key=lambda c: -math.inf if missing(c["final_acc_mean"]) else c["final_acc_mean"])
        datasets.append({"label": study.dlabel(dataset), "cells": cells, "best": best["label"],
                         "gap": gap_values(study, dataset), "backprop": backprop_cell(study, dataset),
                         "comparisons": [comparison(study, dataset, v, b) for v, b in study.pairs(dataset)]})
    return {"protocol": protocol_values(study), "datasets": datasets}


def abstract_values(study: Study) -> dict:
    ref, mm = study.a["reference"], study.a["mean_matched"]
    return {"protocol": protocol_values(study), "n_runs": len(study.runs),
            "n_diverged": int(study.runs["diverged"].sum()), "n_collapsed": int(study.summary["n_collapsed"].sum()),
            "hts": bool(study.hts), "reference_trained": ref in study.variants, "reference_label": study.label(ref),
            "variance": study.tally(ref, "brown_forsythe"), "accuracy": study.tally(ref, "mann_whitney"),
            "mean_matched": {"label": study.label(mm), "variance": study.tally(mm, "brown_forsythe")}
            if mm in study.variants else None}


def limitations_values(study: Study) -> dict:
    data = study.setup.get("data", {})
    holdouts = []
    for dataset in study.datasets:
        d = data.get(dataset, {})
        if d.get("split") == "test-holdout":
            f = float(d.get("holdout_fraction", 0.2))
            holdouts.append({"label": study.dlabel(dataset), "train_pct": 100 * (1 - f), "test_pct": 100 * f,
                             "split_seed": d.get("split_seed", 0),
                             "name": dataset_label(dataset)})
    return {"holdouts": holdouts, "subset": data.get("subset"), "synthetic": "synthetic" in study.datasets}


def grid_figures_values(study: Study) -> dict:
    """The grid's figures for the paper (``setup['figures']``, from the figure registry: name, path below
    figures/, caption and protocol, once per protocol where drawn per protocol), with LaTeX labels."""
    return {"figures": [{"path": f["path"], "caption": tex_escape(f["caption"]),
                         "protocol": tex_escape(f["protocol"]) if f["protocol"] else None,
                         "label": f"{f['name']}:{f['protocol']}" if f["protocol"] else f["name"]}
                        for f in study.setup["figures"]]}


VALUES = {"macros": macros_values, "variants_table": variants_table_values, "summary_table": summary_table_values,
          "stats_table": stats_table_values, "results": results_values, "abstract": abstract_values,
          "limitations": limitations_values, "grid_figures": grid_figures_values}


# ---------------------------------------------------------------------------------------------------- rules


PER_PROTOCOL = ("summary_table", "stats_table", "results", "abstract")  # one part per protocol, in run order


def generate(studies: list[Study]) -> dict[str, str]:
    """The text of every generated file, by name (see ``GENERATED``): the per-protocol parts once for each
    protocol, the others from the first protocol's study (the training config's numbers are its own)."""
    return {name: "\n".join(template(TEMPLATES / f"{name}.tex.j2").render(**VALUES[name](study))
                             for study in (studies if name in PER_PROTOCOL else studies[:1]))
            for name in GENERATED}


def write_generated(inputs: Mapping[str, str], outputs: Mapping[str, str], setup: Mapping, analysis: Mapping) -> None:
    """Read runs/summary/stats/gaps/dt tables and write each generated ``.tex`` named in ``outputs``."""
    def table(name: str) -> pd.DataFrame:  # the protocols' tables, one after the other
        return pd.concat([read_table(path, f"{name} table") for path in inputs[name]], ignore_index=True)

    tables = (table("runs"), table("summary"), table("stats").fillna({"note": ""}), table("gaps"),
              read_table(inputs["dt"], "dt table"))
    studies = [Study(protocol, *tables, setup, analysis) for protocol in setup["run_protocols"]]
    expected = len(setup["datasets"]) * len(setup["variants"]) * len(setup["seeds"])
    for study in studies:
        if len(study.runs) != expected:
            log.warning("protocol %s: runs table has %d runs, the config's grid %d", study.protocol,
                        len(study.runs), expected)
    for name, text in generate(studies).items():
        write_text(outputs[name], text)
