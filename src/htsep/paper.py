"""The manuscript's generated parts and its build.

``write_generated`` turns the study's tables and its configuration into ``paper/generated/*.tex``: a macros file
(every number the text quotes), the variants, summary and statistics tables, and the results, abstract and
limitation sentences, whose direction and significance are read from ``stats.csv`` (nothing is hard-coded).
``build_pdf`` runs latexmk on ``paper/paper.tex``.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from .files import atomic_write, write_text
from .plots import is_uniform, variant_labels
from .stats import settings

log = logging.getLogger(__name__)

GENERATED = ("macros", "variants_table", "summary_table", "stats_table", "results", "abstract", "limitations")
LATEX_PACKAGES = "latexmk texlive-latex-base texlive-latex-recommended texlive-latex-extra texlive-fonts-recommended"
TEST_NAMES = {"brown_forsythe": "Brown--Forsythe", "mann_whitney": "Mann--Whitney", "welch_t": "Welch",
              "fisher_unstable": "Fisher"}
HOLM_FAMILIES = {
    "test": "one family per test, across all datasets, variants and baselines",
    "dataset_test": "one family per test and dataset",
    "all": "one family of all tests of the study",
}
CITATIONS = {"mnist": "lecun1998gradient", "kmnist": "clanuwat2018kmnist", "fashion_mnist": "xiao2017fashion"}
ACTIVATIONS = {"hard_sigmoid": r"hard sigmoid $\sigma(u)=\min(\max(u,0),1)$",
               "sigmoid": r"logistic sigmoid $\sigma(u)=1/(1+e^{-u})$"}


# ------------------------------------------------------------------------------------------------- formatting


_TEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
                "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def tex_escape(text: str) -> str:
    """Escape LaTeX's special characters in plain text."""
    return "".join(_TEX_SPECIAL.get(char, char) for char in str(text))


def _missing(x) -> bool:
    return x is None or x is pd.NA or (isinstance(x, float) and math.isnan(x))


def pct(x, digits: int = 2) -> str:
    """A fraction as a percentage (no sign): 0.97123 -> '97.12'; missing -> '--'."""
    return "--" if _missing(x) else f"{100 * float(x):.{digits}f}"


def num(x, digits: int = 2, math_mode: bool = False) -> str:
    """A number for text (minus sign as ``$-$``) or, with ``math_mode``, for inside ``$...$``."""
    if _missing(x):
        return "--" if not math_mode else r"\text{--}"
    if math.isinf(float(x)):
        text = r"\infty" if x > 0 else r"-\infty"
    else:
        text = f"{float(x):.{digits}f}"
    return text if math_mode else (f"${text}$" if "infty" in text else text.replace("-", "$-$"))


def pval(p) -> str:
    """'0.012', '<0.001' or '--' (text mode)."""
    if _missing(p):
        return "--"
    return r"$<$0.001" if p < 0.001 else f"{p:.3f}"


def p_eq(p, sub: str = "") -> str:
    """'$p=0.012$', '$p<0.001$' (``sub`` as subscript)."""
    name = f"p_{{\\mathrm{{{sub}}}}}" if sub else "p"
    if _missing(p):
        return f"${name}$ n/a"
    return f"${name}<0.001$" if p < 0.001 else f"${name}={p:.3f}$"


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _thousands(n: int) -> str:
    return f"{int(n):,}".replace(",", "{,}")


def _join(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _seed_text(seeds: Sequence[int]) -> str:
    seeds = sorted(int(s) for s in seeds)
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}--{seeds[-1]}"
    return ", ".join(map(str, seeds))


def _number(x) -> str:
    return f"{x:g}"


def spec_text(dt) -> str:
    """A dt spec (or per-layer list) in words and maths."""
    if isinstance(dt, list | tuple):
        if all(spec == dt[0] for spec in dt):
            return spec_text(dt[0])
        return "; ".join(f"layer {i}: {spec_text(spec)}" for i, spec in enumerate(dt, start=1))
    name = dt["distribution"]
    clip = ""
    if "clip_min" in dt or "clip_max" in dt:
        clip = f", clipped to $[{_number(dt.get('clip_min', 1e-3))}, {_number(dt.get('clip_max', 1.0))}]$"
    if name == "constant":
        return f"$\\Delta t_i={_number(dt['value'])}$ for every neuron"
    if name == "uniform":
        return f"$\\mathcal{{U}}({_number(dt['low'])}, {_number(dt['high'])})${clip}"
    if name == "normal":
        return f"$\\mathcal{{N}}(\\mu={_number(dt['mean'])}, \\sigma={_number(dt['std'])})${clip}"
    return f"{name}, mean ${_number(dt['mean'])}$, s.d.\\ ${_number(dt['std'])}$ (moment-matched){clip}"


# ------------------------------------------------------------------------------------------------- the study


class Study:
    """The tables and settings the generated text is written from, in config order."""

    def __init__(self, runs: pd.DataFrame, summary: pd.DataFrame, stats: pd.DataFrame, dt: pd.DataFrame,
                 setup: Mapping, analysis: Mapping):
        self.runs, self.summary, self.stats, self.dt = runs, summary, stats, dt
        self.setup, self.a = setup, settings(analysis)
        present = list(dict.fromkeys(runs["dataset"]))
        self.datasets = [d for d in setup["datasets"] if d in present] + sorted(set(present) - set(setup["datasets"]))
        self.dataset_labels = dict(zip(runs["dataset"], runs["dataset_label"], strict=False))
        self.variant_specs = [v for v in setup["variants"] if v["name"] in set(runs["variant"])]
        self.variants = [v["name"] for v in self.variant_specs]
        self.labels = variant_labels(self.variant_specs, tex=True)
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
        return row is not None and not _missing(row["p_holm"]) and row["p_holm"] < self.alpha

    def direction(self, row: pd.Series | None, higher_when_positive: bool = True) -> str:
        """'lower', 'higher', 'indistinguishable' or 'untestable' for one stats row (Holm-corrected)."""
        if row is None or _missing(row["p"]):
            return "untestable"
        if not self.significant(row):
            return "indistinguishable"
        effect = row["effect_size"]
        if row["effect_name"] == "sd_ratio":
            return "lower" if effect < 1 else "higher"
        return "higher" if (effect > 0) == higher_when_positive else "lower"


# ----------------------------------------------------------------------------------------------- generators


def macros(study: Study) -> str:
    s, a, runs = study.setup, study.a, study.runs
    training, model = s["training"], s["model"]
    sizes = [28 * 28, *model["hidden"], 10]
    hours = runs["wall_seconds"].sum() / 3600
    devices = sorted(set(runs["device"]))
    lines = [
        "% Generated by htsep.paper from the study's config and tables; do not edit.",
        ("NDatasets", len(study.datasets)),
        ("DatasetList", _join([study.dlabel(d) for d in study.datasets])),
        ("DatasetListCited", _join([study.dlabel(d) + (f"~\\citep{{{CITATIONS[d]}}}" if d in CITATIONS else "")
                                    for d in study.datasets])),
        ("NVariants", len(study.variants)),
        ("NHTSVariants", len(study.hts)),
        ("NSeeds", len(s["seeds"])),
        ("SeedList", _seed_text(s["seeds"])),
        ("NRuns", len(runs)),
        ("NEpochs", training["epochs"]),
        ("LayerSizes", "--".join(map(str, sizes))),
        ("NHidden", _join([str(h) for h in model["hidden"]]) or "no"),
        ("Activation", ACTIVATIONS.get(model.get("activation", "hard_sigmoid"), tex_escape(model.get("activation")))),
        ("FreeSteps", training["free_steps"]),
        ("NudgedSteps", training["nudged_steps"]),
        ("Beta", _number(training["beta"])),
        ("LearningRates", _join([f"${_number(lr)}$" for lr in training["lr"]])),
        ("Momentum", _number(training["momentum"])),
        ("WeightDecay", _number(training["weight_decay"])),
        ("BatchSize", training["batch_size"]),
        ("Nudging", r"symmetric (two nudged phases at $\pm\beta$)" if training.get("symmetric", True)
         else r"one-sided (one nudged phase at $+\beta$)"),
        ("CollapseDropPP", _number(100 * a["collapse_drop"])),
        ("Alpha", _number(a["alpha"])),
        ("NBootstrap", _thousands(a["bootstrap"])),
        ("BootstrapMethod", tex_escape(a["bootstrap_method"])),
        ("CILevelPct", _number(100 * a["ci_level"])),
        ("HolmFamily", HOLM_FAMILIES[a["holm_family"]]),
        ("ReferenceLabel", study.label(a["reference"])),
        ("MeanMatchedLabel", study.label(a["mean_matched"])),
        ("NDiverged", int(runs["diverged"].sum())),
        ("NUnstable", int(study.summary["n_unstable"].sum())),
        ("NCollapsed", int(study.summary["n_collapsed"].sum())),
        ("NDeadClasses", int(study.summary["n_dead_classes"].sum())),
        ("ComputeTime", f"{hours:.1f} hours" if hours >= 1 else f"{60 * hours:.1f} minutes" if hours >= 1 / 60
         else f"{3600 * hours:.1f} seconds"),
        ("Devices", _join([r"\texttt{" + tex_escape(d) + "}" for d in devices])),
    ]
    out = []
    for line in lines:
        if isinstance(line, str):
            out.append(line)
        else:
            out.append(f"\\newcommand{{\\{line[0]}}}{{{line[1]}}}")
    out.append("% \\htsepvalue{dataset}{variant}{column}: one formatted summary.csv value (accuracies in %).")
    out.append(r"\newcommand{\htsepvalue}[3]{\csname htsep/#1/#2/#3\endcsname}")
    for row in study.summary.itertuples(index=False):
        values = {"final_acc_mean": pct(row.final_acc_mean), "final_acc_std": pct(row.final_acc_std),
                  "best_acc_mean": pct(row.best_acc_mean), "n_unstable": row.n_unstable,
                  "n_diverged": row.n_diverged, "n_runs": row.n_runs}
        for key, value in values.items():
            out.append(f"\\expandafter\\def\\csname htsep/{row.dataset}/{row.variant}/{key}\\endcsname{{{value}}}")
    return "\n".join(out) + "\n"


def variants_table(study: Study) -> str:
    rows = []
    for v in study.variant_specs:
        x = study.dt.loc[study.dt["variant"] == v["name"], "dt"].to_numpy(float)
        skew = sps.skew(x) if len(x) and np.ptp(x) > 0 else math.nan
        role = []
        if v["name"] == study.a["reference"]:
            role.append("reference")
        if v["name"] == study.a["mean_matched"]:
            role.append("mean-matched")
        name = study.label(v["name"]) + (f" ({', '.join(role)})" if role else "")
        stats = [num(x.mean(), 3), num(x.std(), 3), num(skew, 2), num(x.min(), 3), num(x.max(), 3)] if len(x) \
            else ["--"] * 5
        rows.append(f"{name} & {spec_text(v['dt'])} & " + " & ".join(stats) + r" \\")
    return "\n".join([
        r"\begin{tabular}{@{}>{\raggedright\arraybackslash}p{0.27\linewidth}"
        r">{\raggedright\arraybackslash}p{0.33\linewidth}rrrrr@{}}",
        r"\toprule",
        r"Variant & $\Delta t_i$ drawn from & mean & s.d. & skew & min & max \\",
        r"\midrule",
        *rows,
        r"\bottomrule",
        r"\end{tabular}",
    ]) + "\n"


def summary_table(study: Study) -> str:
    ncol = 9
    lines = [
        r"\begin{tabular}{@{}lrrrrrrrr@{}}",
        r"\toprule",
        r" & \multicolumn{4}{c}{Final test accuracy (\%)} & & \multicolumn{3}{c}{Runs} \\",
        r"\cmidrule(lr){2-5}\cmidrule(l){7-9}",
        r"Variant & mean $\pm$ s.d. & \CILevelPct\% CI & median & IQR & $\overline{\mathrm{sd}}_{\mathrm{epoch}}$ (pp)"
        r" & collapsed & diverged & unstable \\",
    ]
    for dataset in study.datasets:
        lines += [r"\midrule", f"\\multicolumn{{{ncol}}}{{@{{}}l}}{{\\textit{{{study.dlabel(dataset)}}}}} \\\\"]
        for variant in study.variants:
            c = study.cell(dataset, variant)
            if c is None:
                continue
            n = int(c["n_runs"])
            lines.append(
                f"{study.label(variant)} & {pct(c['final_acc_mean'])} $\\pm$ {pct(c['final_acc_std'])} & "
                f"[{pct(c['final_acc_ci_low'])}, {pct(c['final_acc_ci_high'])}] & {pct(c['final_acc_median'])} & "
                f"{pct(c['final_acc_iqr'])} & {pct(c['seed_std_mean'])} & {int(c['n_collapsed'])}/{n} & "
                f"{int(c['n_diverged'])}/{n} & {int(c['n_unstable'])}/{n} \\\\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def stats_table(study: Study) -> str:
    ncol = 9

    def cell(row, digits=2):
        if row is None:
            return "-- & --"
        p = pval(row["p_holm"])
        p = f"\\textbf{{{p}}}" if study.significant(row) else p
        return f"{num(row['effect_size'], digits)} & {p}"

    lines = [
        r"\begin{tabular}{@{}llrrrrrrrr@{}}",
        r"\toprule",
        r" & & \multicolumn{2}{c}{Brown--Forsythe} & \multicolumn{2}{c}{Mann--Whitney} & "
        r"\multicolumn{2}{c}{Welch $t$} & \multicolumn{2}{c}{Fisher (unstable)} \\",
        r"\cmidrule(lr){3-4}\cmidrule(lr){5-6}\cmidrule(lr){7-8}\cmidrule(l){9-10}",
        r"Variant & vs.\ baseline & sd ratio & $p_{\mathrm{Holm}}$ & Cliff's $\delta$ & $p_{\mathrm{Holm}}$ & "
        r"Cohen's $d$ & $p_{\mathrm{Holm}}$ & $\Delta$rate & $p_{\mathrm{Holm}}$ \\",
    ]
    for dataset in study.datasets:
        pairs = study.pairs(dataset)
        if not pairs:
            continue
        lines += [r"\midrule", f"\\multicolumn{{{ncol + 1}}}{{@{{}}l}}{{\\textit{{{study.dlabel(dataset)}}}}} \\\\"]
        for variant, baseline in pairs:
            cells = [cell(study.test(dataset, variant, baseline, t)) for t in TEST_NAMES]
            lines.append(f"{study.label(variant)} & {study.label(baseline)} & " + " & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def variance_sentence(study: Study, dataset: str, variant: str, baseline: str) -> str:
    row = study.test(dataset, variant, baseline, "brown_forsythe")
    a, b = study.cell(dataset, variant), study.cell(dataset, baseline)
    sds = f"s.d.\\ {pct(a['final_acc_std'])} vs.\\ {pct(b['final_acc_std'])}~pp"
    direction = study.direction(row)
    va, vb = study.label(variant), study.label(baseline)
    if direction == "untestable":
        note = f": {tex_escape(row['note'])}" if row is not None and row["note"] else ""
        return f"The across-seed variances of {va} and {vb} could not be compared ({sds}{note})."
    ps = f"Brown--Forsythe {p_eq(row['p'])}, Holm-corrected {p_eq(row['p_holm'])}"
    if direction == "indistinguishable":
        return (f"{_cap(va)} had across-seed variance of final accuracy statistically indistinguishable from {vb} "
                f"({sds}; {ps}).")
    return f"{_cap(va)} had significantly {direction} across-seed variance of final accuracy than {vb} ({sds}; {ps})."


def accuracy_sentence(study: Study, dataset: str, variant: str, baseline: str) -> str:
    mw = study.test(dataset, variant, baseline, "mann_whitney")
    a, b = study.cell(dataset, variant), study.cell(dataset, baseline)
    means = f"mean {pct(a['final_acc_mean'])} vs.\\ {pct(b['final_acc_mean'])}\\,\\%"
    direction = study.direction(mw)
    if direction == "untestable":
        note = f": {tex_escape(mw['note'])}" if mw is not None and mw["note"] else ""
        return f"Final accuracies could not be compared ({means}{note})."
    detail = f"Mann--Whitney {p_eq(mw['p_holm'], 'Holm')}, Cliff's $\\delta={num(mw['effect_size'], math_mode=True)}$"
    if direction == "indistinguishable":
        return f"Its final accuracy was not significantly different ({means}; {detail})."
    return f"Its final accuracy was significantly {direction} ({means}; {detail})."


def instability_sentence(study: Study, dataset: str, variant: str, baseline: str) -> str:
    row = study.test(dataset, variant, baseline, "fisher_unstable")
    a, b = study.cell(dataset, variant), study.cell(dataset, baseline)
    counts = (f"unstable runs (collapse or divergence): {int(a['n_unstable'])}/{int(a['n_runs'])} vs.\\ "
              f"{int(b['n_unstable'])}/{int(b['n_runs'])}")
    if row is None or _missing(row["p"]):
        note = f" ({tex_escape(row['note'])})" if row is not None and row["note"] else ""
        return f"{_cap(counts)}{note}."
    return f"{_cap(counts)} (Fisher {p_eq(row['p_holm'], 'Holm')})."


def results_text(study: Study) -> str:
    out = ["% Generated by htsep.paper from summary.csv and stats.csv; do not edit."]
    for dataset in study.datasets:
        cells = [(v, study.cell(dataset, v)) for v in study.variants]
        cells = [(v, c) for v, c in cells if c is not None]
        accs = _join([f"{pct(c['final_acc_mean'])}\\,$\\pm$\\,{pct(c['final_acc_std'])}\\,\\% with {study.label(v)}"
                      for v, c in cells])
        best = max(cells, key=lambda vc: -math.inf if _missing(vc[1]["final_acc_mean"]) else vc[1]["final_acc_mean"])
        out.append(f"\\paragraph{{{study.dlabel(dataset)}.}} Final test accuracy after \\NEpochs{{}} epochs "
                   f"(mean $\\pm$ s.d.\\ over seeds) was {accs}; the highest mean was reached with "
                   f"{study.label(best[0])}.")
        pairs = study.pairs(dataset)
        if not pairs:
            out.append("No variant-versus-baseline comparison was possible (the baselines were not trained).")
            continue
        out.append(r"\begin{itemize}")
        for variant, baseline in pairs:
            out.append("\\item " + " ".join([variance_sentence(study, dataset, variant, baseline),
                                   accuracy_sentence(study, dataset, variant, baseline),
                                   instability_sentence(study, dataset, variant, baseline)]))
        out.append(r"\end{itemize}")
    return "\n".join(out) + "\n"


def _tally(study: Study, baseline: str, test: str) -> dict[str, int]:
    """How many (dataset, heterogeneous variant) comparisons against ``baseline`` went which way."""
    counts = {"lower": 0, "higher": 0, "indistinguishable": 0, "untestable": 0}
    for dataset in study.datasets:
        for variant in study.hts:
            if (variant, baseline) in study.pairs(dataset):
                counts[study.direction(study.test(dataset, variant, baseline, test))] += 1
    return counts


def _tally_text(counts: Mapping[str, int]) -> str:
    """'was significantly lower in 2, significantly higher in 0 and statistically indistinguishable in 4 of 6'."""
    parts = [f"significantly lower in {counts['lower']}", f"significantly higher in {counts['higher']}",
             f"statistically indistinguishable in {counts['indistinguishable']}"]
    if counts["untestable"]:
        parts.append(f"untestable in {counts['untestable']}")
    return f"was {_join(parts)} of {sum(counts.values())}"


def abstract_text(study: Study) -> str:
    """The abstract's results sentences: counts of comparisons by direction, per baseline."""
    ref, mm = study.a["reference"], study.a["mean_matched"]
    if not study.hts:
        return "No heterogeneous variant was trained in this configuration of the study.\n"
    if ref not in study.variants:
        return "The reference variant was not trained, so no comparison was made.\n"
    var, acc = _tally(study, ref, "brown_forsythe"), _tally(study, ref, "mann_whitney")
    text = (f"Against {study.label(ref)}, the across-seed variance of final test accuracy of the heterogeneous "
            f"networks {_tally_text(var)} dataset--variant comparisons (Brown--Forsythe, Holm-corrected, "
            f"$\\alpha=\\Alpha$), and their final accuracy {_tally_text(acc)} (Mann--Whitney).")
    if mm in study.variants:
        var_mm = _tally(study, mm, "brown_forsythe")
        text += (f" Against the mean-matched control {study.label(mm)}, the variance "
                 f"{_tally_text(var_mm)}.")
    text += (" Of all \\NRuns{} runs, \\NDiverged{} diverged and \\NCollapsed{} showed a test-accuracy "
             "collapse of more than \\CollapseDropPP{} percentage points between consecutive epochs.")
    return text + "\n"


def verdict_text(study: Study) -> str:
    """Whether the stability and accuracy claims are reproduced, from the reference comparisons."""
    ref = study.a["reference"]
    if not study.hts or ref not in study.variants:
        return "Without both heterogeneous and reference runs, the claims could not be tested.\n"
    var, acc = _tally(study, ref, "brown_forsythe"), _tally(study, ref, "mann_whitney")
    n = sum(var.values())
    if n and var["lower"] == n:
        claim = (f"Our runs reproduce the stability claim: every one of the {n} heterogeneous dataset--variant "
                 f"comparisons had significantly lower across-seed variance than {study.label(ref)}.")
    elif var["lower"]:
        claim = (f"Our runs partially support the stability claim: the across-seed variance was significantly lower "
                 f"than with {study.label(ref)} in {var['lower']} of {n} heterogeneous dataset--variant comparisons.")
    else:
        which = "the one heterogeneous dataset--variant comparison" if n == 1 else \
            f"none of the {n} heterogeneous dataset--variant comparisons"
        claim = (f"Our runs do not reproduce the stability claim at this number of seeds: {which} "
                 f"{'did not show' if n == 1 else 'had'} significantly lower across-seed variance than "
                 f"{study.label(ref)}.")
    if var["higher"]:
        claim += f" In {var['higher']} comparison{'s' if var['higher'] > 1 else ''} it was significantly higher."
    if acc["lower"] == 0:
        claim += (f" Accuracy was competitive: no heterogeneous variant had significantly lower final accuracy, "
                  f"and {acc['higher']} of {sum(acc.values())} comparisons showed a significantly higher one.")
    else:
        claim += (f" Accuracy was significantly lower in {acc['lower']} and significantly higher in {acc['higher']} "
                  f"of {sum(acc.values())} comparisons.")
    return claim + "\n"


def limitations_text(study: Study) -> str:
    data = study.setup.get("data", {})
    out = []
    for dataset in study.datasets:
        d = data.get(dataset, {})
        if d.get("split") == "test-holdout":
            f = float(d.get("holdout_fraction", 0.2))
            out.append(
                f"\\item \\textbf{{{study.dlabel(dataset)}:}} the official training set was not available, so the "
                f"networks were trained on a class-stratified {_number(100 * (1 - f))}\\,\\% of the official test "
                f"set and evaluated on the remaining {_number(100 * f)}\\,\\% (split seed {d.get('split_seed', 0)}). "
                f"These accuracies come from a much smaller training set and are not comparable to published "
                f"{tex_escape(dataset.upper() if dataset != 'fashion_mnist' else 'Fashion-MNIST')} test accuracies.")
    if data.get("subset"):
        out.append(f"\\item Training used only the first {data['subset']} training images of each class.")
    if "synthetic" in study.datasets:
        out.append("\\item The synthetic dataset is a seeded stand-in used to exercise the pipeline; its numbers "
                   "say nothing about the claims under test.")
    if not out:
        out.append("\\item All datasets were used with their official training and test splits.")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------------- rules


def generate(study: Study) -> dict[str, str]:
    """The text of every generated file, by name (see ``GENERATED``)."""
    return {
        "macros": macros(study) + "\\newcommand{\\Verdict}{" + verdict_text(study).strip() + "}\n",
        "variants_table": variants_table(study),
        "summary_table": summary_table(study),
        "stats_table": stats_table(study),
        "results": results_text(study),
        "abstract": abstract_text(study),
        "limitations": limitations_text(study),
    }


def write_generated(inputs: Mapping[str, str], outputs: Mapping[str, str], setup: Mapping, analysis: Mapping) -> None:
    """Read runs/summary/stats/dt tables and write each generated ``.tex`` named in ``outputs``."""
    study = Study(pd.read_parquet(inputs["runs"]), pd.read_csv(inputs["summary"], keep_default_na=True),
                  pd.read_csv(inputs["stats"], keep_default_na=True).fillna({"note": ""}),
                  pd.read_parquet(inputs["dt"]), setup, analysis)
    expected = len(setup["datasets"]) * len(setup["variants"]) * len(setup["seeds"])
    if len(study.runs) != expected:
        log.warning("runs table has %d runs, the config's grid %d", len(study.runs), expected)
    for name, text in generate(study).items():
        write_text(outputs[name], text)


def build_pdf(tex: str | Path, pdf: str | Path, latex_log: str | Path | None = None) -> Path:
    """latexmk -pdf ``tex`` in a fresh temporary folder beside ``pdf``, then move the PDF (and log) into place."""
    missing = [tool for tool in ("latexmk", "pdflatex", "bibtex") if shutil.which(tool) is None]
    if missing:
        raise RuntimeError(f"cannot build the paper: {', '.join(missing)} not found on PATH. Install TeX Live, "
                           f"e.g. on Debian/Ubuntu: sudo apt-get install {LATEX_PACKAGES}")
    tex, pdf = Path(tex).resolve(), Path(pdf)
    pdf.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=pdf.parent, prefix=".latexmk-") as tmp:
        cmd = ["latexmk", "-norc", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "-cd",
               f"-outdir={Path(tmp).resolve()}", str(tex)]
        env = {**os.environ, "SOURCE_DATE_EPOCH": "0", "FORCE_SOURCE_DATE": "1"}  # reproducible PDF
        log.info("running %s", " ".join(cmd))
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        log.info("latexmk output:\n%s", proc.stdout[-20000:] + proc.stderr[-5000:])
        tex_log = Path(tmp) / f"{tex.stem}.log"
        log_text = tex_log.read_text(errors="replace") if tex_log.exists() else ""
        if latex_log is not None:
            write_text(latex_log, log_text)
        built = Path(tmp) / f"{tex.stem}.pdf"
        if proc.returncode != 0 or not built.exists():
            errors = [line for line in log_text.splitlines() if line.startswith("!")]
            tail = "\n".join(log_text.splitlines()[-40:])
            raise RuntimeError(f"latexmk failed on {tex} (exit {proc.returncode}); LaTeX errors: {errors or 'none'}"
                               f"\nlast lines of {tex_log.name}:\n{tail}")
        atomic_write(pdf, lambda p: shutil.copyfile(built, p))
    return pdf
