"""The grid's parts of the manuscript: ``write_generated`` turns the grid's tables and its configuration into
``paper/generated/*.tex``: a macros file (every number the text quotes), the variants, summary and (secondary,
unpaired) statistics tables, and per protocol the results (the forest plot and table of the paired effects, and
sentences for what they cannot say), the results overview's, the discussion's and the limitations' sentences. The
text is in this folder's templates (``templates/<name>.tex.j2``); this module computes what they show, read from
``paired.csv``, ``summary.csv``, ``stats.csv`` and ``gaps.csv`` (nothing is hard-coded).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from ...config import BACKPROP, dataset_label, model_slice
from ...files import read_table, write_text
from ...paired import EFFECTS
from ...report.style import Order, is_uniform
from ...report.tex import missing, template, tex_escape
from . import paired_effects
from .stats import TESTS, baselines, describe_dt, settings

log = logging.getLogger(__name__)

GENERATED = ("macros", "variants_table", "summary_table", "stats_table", "results", "overview", "verdict",
             "limitations", "grid_figures")
TEMPLATES = Path(__file__).with_name("templates")
ROLES = {"reference": "reference", "mean_matched": "mean-matched", "standard_ep": "standard EP"}  # baselines' roles
RESOLVED = ("higher", "lower")  # the verdicts of a paired test below the Holm-adjusted level
SHOWN = ("accuracy", "spread")  # the paired tests with an effect size, a CI and a resolution
BOUNDS = {test: float(EFFECTS[test][-1]) for test in SHOWN}  # the largest effect a resolution is simulated for


# ------------------------------------------------------------------------------------------------- the study


class Study:
    """The tables and settings the generated text of one training protocol is written from, in config order
    (``backprop`` and ``gaps``: the backprop reference's summary rows and this protocol's EP-to-backprop gaps;
    ``paired``: its paired effects)."""

    def __init__(self, protocol: str, runs: pd.DataFrame, summary: pd.DataFrame, stats: pd.DataFrame,
                 gaps: pd.DataFrame, paired: pd.DataFrame, dt: pd.DataFrame, setup: Mapping, analysis: Mapping):
        def own(frame):
            return frame[frame["protocol"] == protocol]

        self.protocol, self.runs, self.summary, self.stats, self.gaps, self.paired = protocol, own(runs), \
            own(summary), own(stats), own(gaps), own(paired)
        self.backprop = summary[summary["protocol"] == BACKPROP]
        self.dt = dt[dt["protocol"] == dt["protocol"].iloc[0]] if len(dt) else dt  # dt is the same in every protocol
        self.setup, self.a = setup, settings(analysis)
        order = Order(self.runs, setup["datasets"], setup["variants"], tex=True)
        self.datasets, self.dataset_labels, self.variant_specs = order.datasets, order.dataset_labels, \
            order.variant_specs
        self.variants, self.labels = order.variants, order.labels
        self.hts = [v["name"] for v in self.variant_specs if not is_uniform(v)]
        self.baselines = [b for b in baselines(self.a) if b in self.variants]
        self.alpha = float(self.a["alpha"])

    def label(self, variant: str) -> str:
        return self.labels.get(variant, tex_escape(variant))

    def dlabel(self, dataset: str) -> str:
        return tex_escape(self.dataset_labels[dataset])

    def cell(self, dataset: str, variant: str) -> pd.Series | None:
        rows = self.summary[(self.summary["dataset"] == dataset) & (self.summary["variant"] == variant)]
        return rows.iloc[0] if len(rows) else None

    def roles(self, variant: str) -> list[str]:
        """The baseline roles of ``variant`` ('reference', 'mean-matched', 'standard EP')."""
        return [role for key, role in ROLES.items() if self.a[key] == variant]

    def effects(self) -> list[dict]:
        """The paired effects (paired.csv rows) in config order of dataset, baseline and variant, with labels and
        the baseline's role."""
        rows = []
        for dataset in self.datasets:
            for baseline in self.baselines:
                for variant in self.variants:
                    found = self.paired[(self.paired["dataset"] == dataset) & (self.paired["variant"] == variant)
                                        & (self.paired["baseline"] == baseline)]
                    rows += [{**row, "variant_label": self.label(variant), "baseline_label": self.label(baseline),
                              "dataset_label": self.dlabel(dataset), "hts": variant in self.hts,
                              "role": self.roles(baseline)[0]}
                             for row in found.to_dict("records")]
        return rows

    def test(self, dataset: str, variant: str, baseline: str, test: str) -> pd.Series | None:
        s = self.stats
        rows = s[(s["dataset"] == dataset) & (s["variant"] == variant) & (s["baseline"] == baseline)
                 & (s["test"] == test)]
        return rows.iloc[0] if len(rows) else None

    def pairs(self, dataset: str) -> list[tuple[str, str]]:
        """(variant, baseline) pairs of ``dataset`` in stats.csv, baselines and variants in config order."""
        s = self.stats[self.stats["dataset"] == dataset]
        found = set(zip(s["variant"], s["baseline"], strict=True))
        return [(v, b) for b in self.baselines for v in self.variants if (v, b) in found]

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
        "protocols": [tex_escape(p) for p in s["run_protocols"]], "subset": s["data"].get("subset"),
        "power": paired_effects.POWER,
    }


def variants_table_values(study: Study) -> dict:
    rows = []
    for v in study.variant_specs:
        x = study.dt.loc[study.dt["variant"] == v["name"], "dt"].to_numpy(float)
        roles = study.roles(v["name"])
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


def span(effects: list[dict], key: str, low: str, high: str) -> dict:
    """The ``key`` effects of ``effects``: one value with its CI (``single``), or their range and the range their CIs
    cover (NaN where none is finite)."""
    def finite(name, pick):
        return pick((e[name] for e in effects if not missing(e[name])), default=math.nan)

    return {"single": len(effects) == 1, "low": finite(key, min), "high": finite(key, max),
            "ci_low": finite(low, min), "ci_high": finite(high, max)}


def resolutions(effects: list[dict], test: str) -> dict:
    """The resolutions of ``test`` ('accuracy' or 'spread') in ``effects``: the smallest and largest found, how many
    found none within the simulated effects (up to ``bound``) and of how many; for accuracy, whether no Wilcoxon test
    of these pairs can reach Holm's strictest level at all (``unreachable``: its smallest p, 2^(1 - pairs), ``floor``,
    is not below that ``level``)."""
    found = [e[f"{test}_resolution"] for e in effects if not missing(e[f"{test}_resolution"])]
    floor = max((2.0 ** (1 - e["n_pairs"]) for e in effects), default=math.nan)
    level = min((e["resolution_alpha"] for e in effects), default=math.nan)
    return {"n": len(effects), "beyond": len(effects) - len(found), "bound": BOUNDS[test],
            "low": min(found, default=math.nan), "high": max(found, default=math.nan),
            "unreachable": test == "accuracy" and bool(effects) and not found and floor >= level,
            "floor": floor, "level": level}


def grouped(effects: list[dict], test: str) -> list[dict]:
    """Resolved effects of ``test`` grouped by dataset and baseline: the variants and the range of their effects."""
    key = {"accuracy": "accuracy_difference", "spread": "spread_sd_ratio"}[test]
    groups: dict[tuple, list[dict]] = {}
    for e in effects:
        groups.setdefault((e["dataset_label"], e["baseline_label"]), []).append(e)
    return [{"test": test, "dataset_label": dataset, "baseline_label": baseline,
             "variants": [e["variant_label"] for e in own], "low": min(e[key] for e in own),
             "high": max(e[key] for e in own)} for (dataset, baseline), own in groups.items()]


def resolved(effects: list[dict], test: str, verdict: str | None = None) -> list[dict]:
    """The effects whose ``test`` is resolved (in the direction ``verdict``, if given)."""
    return [e for e in effects if e[f"{test}_verdict"] in ((verdict,) if verdict else RESOLVED)]


def paired_values(study: Study) -> dict:
    """What every part about the paired effects shows: the protocol, seeds, Holm family, resolution settings, the
    baselines and the effects."""
    effects = study.effects()
    return {"protocol": protocol_values(study), "effects": effects, "n_seeds": len(study.setup["seeds"]),
            "n_tests": sum(not missing(e[f"{test}_p"]) for e in effects for test in paired_effects.TESTS),
            "bounds": BOUNDS,
            "baselines": [{"name": b, "label": study.label(b), "role": study.roles(b)[0]} for b in study.baselines
                          if any(e["baseline"] == b for e in effects)]}


def results_values(study: Study) -> dict:
    """The protocol's results: its forest plot, the table of accuracies and paired differences, the effects resolved,
    the resolution of the others, failures and the gaps to backprop."""
    values = paired_values(study)
    effects = {(e["dataset"], e["variant"], e["baseline"]): e for e in values["effects"]}
    datasets = [{"label": study.dlabel(d), "backprop": backprop_cell(study, d), "gap": gap_values(study, d),
                 "cells": [{"label": study.label(v), **c.to_dict(),
                            "effects": [effects.get((d, v, b["name"])) for b in values["baselines"]]}
                           for v in study.variants if (c := study.cell(d, v)) is not None]}
                for d in study.datasets]
    inconclusive = {test: [e for e in values["effects"] if e[f"{test}_verdict"] == "inconclusive"] for test in SHOWN}
    return values | {"datasets": datasets, "n_runs": len(study.runs),
                     "n_unstable": int(study.summary["n_unstable"].sum()),
                     "figures": [figure_values(f) for f in study.setup["results_figures"]
                                 if f["protocol"] == study.protocol],
                     "resolved": {test: resolved(values["effects"], test) for test in paired_effects.TESTS},
                     "inconclusive": {test: resolutions(inconclusive[test], test) for test in SHOWN}}


def overview_values(study: Study) -> dict:
    """Per dataset, the heterogeneous variants' paired effects against each baseline (a value, or a range over the
    variants), what of them is resolved and at what resolution the rest is not."""
    values = paired_values(study)
    hts = [e for e in values["effects"] if e["hts"]]
    order = sorted(values["baselines"], key=lambda b: b["name"] != study.a["mean_matched"])  # heterogeneity first
    datasets = []
    for dataset in study.datasets:
        own = {b["name"]: [e for e in hts if (e["dataset"], e["baseline"]) == (dataset, b["name"])] for b in order}
        against = [{**b, "accuracy": span(own[b["name"]], "accuracy_difference", "accuracy_ci_low",
                                          "accuracy_ci_high"),
                    "spread": span(own[b["name"]], "spread_sd_ratio", "spread_ci_low", "spread_ci_high")}
                   for b in order if own[b["name"]]]
        if against:
            datasets.append({"label": study.dlabel(dataset), "baselines": against})
    return values | {"datasets": datasets, "n_runs": len(study.runs),
                     "resolved": [g for test in SHOWN for g in grouped(resolved(hts, test), test)],
                     "n_resolved": sum(len(resolved(hts, test)) for test in SHOWN),
                     "n_shown": len(hts) * len(SHOWN),
                     "resolutions": {test: resolutions(hts, test) for test in SHOWN},
                     "n_diverged": int(study.runs["diverged"].sum()),
                     "n_collapsed": int(study.summary["n_collapsed"].sum())}


def verdict_values(study: Study) -> dict:
    """The discussion's reading of the heterogeneous variants' paired effects: which resolved which way, and the
    resolution of the rest."""
    values = paired_values(study)
    hts = [e for e in values["effects"] if e["hts"]]
    uniform = [e for e in values["effects"] if not e["hts"]]

    def alike(test: str) -> list[dict]:  # uniform steps resolved as some heterogeneous variant is, against its baseline
        seen = {(e["dataset"], e["baseline"], e[f"{test}_verdict"]) for e in resolved(hts, test)}
        return grouped([e for e in resolved(uniform, test)
                        if (e["dataset"], e["baseline"], e[f"{test}_verdict"]) in seen], test)

    return values | {"n_hts": len(hts), "resolutions": {test: resolutions(hts, test) for test in SHOWN},
                     "resolved": {test: {way: grouped(resolved(hts, test, way), test) for way in RESOLVED}
                                  for test in SHOWN},
                     "n_resolved": {test: len(resolved(hts, test)) for test in SHOWN},
                     "alike": {test: alike(test) for test in SHOWN}}


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


def figure_values(figure: Mapping) -> dict:
    """A figure of the registry for the paper (htsep.report.figures.paper_figures: name, path below figures/,
    caption and protocol), with its LaTeX label."""
    return {"path": figure["path"], "caption": tex_escape(figure["caption"]),
            "protocol": tex_escape(figure["protocol"]) if figure["protocol"] else None,
            "label": f"{figure['name']}:{figure['protocol']}" if figure["protocol"] else figure["name"]}


def grid_figures_values(study: Study) -> dict:
    """The grid's figure list (``setup['figures']``, once per protocol where drawn per protocol)."""
    return {"figures": [figure_values(f) for f in study.setup["figures"]]}


VALUES = {"macros": macros_values, "variants_table": variants_table_values, "summary_table": summary_table_values,
          "stats_table": stats_table_values, "results": results_values, "overview": overview_values,
          "verdict": verdict_values, "limitations": limitations_values, "grid_figures": grid_figures_values}


# ---------------------------------------------------------------------------------------------------- rules


PER_PROTOCOL = ("summary_table", "stats_table", "results", "overview", "verdict")  # one per protocol, in run order


def generate(studies: list[Study]) -> dict[str, str]:
    """The text of every generated file, by name (see ``GENERATED``): the per-protocol parts once for each
    protocol, the others from the first protocol's study (the training config's numbers are its own)."""
    return {name: "\n".join(template(TEMPLATES / f"{name}.tex.j2").render(**VALUES[name](study))
                             for study in (studies if name in PER_PROTOCOL else studies[:1]))
            for name in GENERATED}


def write_generated(inputs: Mapping[str, str], outputs: Mapping[str, str], setup: Mapping, analysis: Mapping) -> None:
    """Read runs/summary/stats/gaps/paired/dt tables and write each generated ``.tex`` named in ``outputs``."""
    def table(name: str) -> pd.DataFrame:  # the protocols' tables, one after the other
        return pd.concat([read_table(path, f"{name} table") for path in inputs[name]], ignore_index=True)

    tables = (table("runs"), table("summary"), table("stats").fillna({"note": ""}), table("gaps"), table("paired"),
              read_table(inputs["dt"], "dt table"))
    studies = [Study(protocol, *tables, setup, analysis) for protocol in setup["run_protocols"]]
    expected = len(setup["datasets"]) * len(setup["variants"]) * len(setup["seeds"])
    for study in studies:
        if len(study.runs) != expected:
            log.warning("protocol %s: runs table has %d runs, the config's grid %d", study.protocol,
                        len(study.runs), expected)
    for name, text in generate(studies).items():
        write_text(outputs[name], text)
