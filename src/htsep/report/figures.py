"""Every figure of the study, defined once: its name, the tables it reads, the config parts it needs, the function
that draws it and its report caption.

The workflow makes one rule per figure from ``FIGURES`` (``workflow/rules/analysis.smk``), writing
``figures/<protocol>/<name>.pdf|png`` (grid figures, one per training protocol, drawn from that protocol's rows;
``reference=True`` also hands them the backprop reference's rows), ``figures/<name>.pdf|png`` (figures of the
grid as a whole, and the stability frontier's) or ``figures/mechanism/<name>.pdf|png`` (mechanism figures); the
paper rule and the tests read the same list. Adding a figure is one entry here and its plotting function, which
takes the entry's tables (as DataFrames) and config parts as keyword arguments and returns the figure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pandas as pd

from ..config import BACKPROP, figure_slice
from ..experiments.calibration import plots as calibration_plots
from ..experiments.confirmatory import plots as confirmatory_plots
from ..experiments.depth import plots as depth_plots
from ..experiments.factorial import plots as factorial_plots
from ..experiments.frontier import plots as frontier_plots
from ..experiments.grid import plots as grid_plots
from ..experiments.mechanism import plots as mechanism_plots
from ..experiments.robustness import plots as robustness_plots
from ..experiments.sensitivity import plots as sensitivity_plots
from ..files import read_table
from ..paths import (
    CALIBRATION,
    CONFIRMATORY,
    DEPTH,
    FACTORIAL,
    FIGURE_DIR,
    FRONTIER,
    MECHANISM,
    ROBUSTNESS,
    SENSITIVITY,
    TABLES,
)
from . import style


@dataclass(frozen=True)
class Figure:
    """One figure: ``plot(**tables, **settings)`` draws it from ``tables`` (keyword -> parquet or CSV file) and the
    config parts named in ``settings`` (see ``htsep.config.FIGURE_SETTINGS``)."""

    name: str
    tables: Mapping[str, str]
    settings: tuple[str, ...]
    plot: Callable
    caption: str
    mechanism: bool = False
    section: str | None = None  # the paper section that shows it (None: the grid's figure list, or Mechanism)
    per_protocol: bool = False  # one figure per training protocol, from that protocol's rows
    reference: bool = False  # its plot also takes ``reference``: the backprop reference's runs table
    mem_mb: int = 2000  # what drawing it may take

    def stem(self, protocol: str | None = None) -> str:
        """Output path without extension (``protocol``: which protocol's figure, for per-protocol figures)."""
        if self.mechanism:
            return f"{FIGURE_DIR}/mechanism/{self.name}"
        return f"{FIGURE_DIR}/{protocol}/{self.name}" if self.per_protocol else f"{FIGURE_DIR}/{self.name}"

    def path(self, ext: str, protocol: str | None = None) -> str:
        return f"{self.stem(protocol)}.{ext}"

    def rule(self, protocol: str | None = None) -> str:
        """Name of the workflow rule that draws it."""
        if self.mechanism:
            return f"mech_figure_{self.name}"
        return f"figure_{self.name}_{protocol}" if self.per_protocol else f"figure_{self.name}"

    def outputs(self, protocols) -> list[tuple[str | None, str]]:
        """(protocol, stem) of every file set this figure has (one per protocol, or one)."""
        return [(p, self.stem(p)) for p in protocols] if self.per_protocol else [(None, self.stem())]

    def inputs(self, protocol: str | None, config: Mapping) -> dict[str, str]:
        """The tables it is drawn from: its grid tables those of ``grid_protocol`` (and the backprop reference's runs
        as ``reference``, when configured)."""
        grid = grid_protocol(self, protocol, config)
        tables = {key: path.format(protocol=grid) for key, path in self.tables.items()}
        if self.reference and config["backprop"] is not None:
            tables["reference"] = GRID_RUNS.format(protocol=BACKPROP)
        return tables


ORDER = ("datasets", "variants")  # the config's order and labels of datasets and variants
GRID_RUNS, GRID_EPOCHS, GRID_DT, GRID_PAIRED = (f"{TABLES}/{{protocol}}/{name}" for name in (
    "runs.parquet", "epochs.parquet", "dt_values.parquet", "paired.csv"))
FIGURES = (
    Figure("paired_effects", {"paired": GRID_PAIRED}, ORDER, grid_plots.paired_forest,
           "Paired effects of the grid's runs (exploratory), each variant against each uniform baseline it is "
           "compared with, paired by seed. Left: mean difference of final test accuracy with its bootstrap "
           "confidence interval. Right: ratio of the s.d.s of final accuracy across seeds with its bootstrap "
           "confidence interval (log scale). Colour: the verdict at the Holm-adjusted level, one family per protocol "
           "(grey: inconclusive; the protocol's table of paired effects gives each test's resolution).",
           per_protocol=True, section="results"),
    Figure("accuracy_curves", {"epochs": GRID_EPOCHS}, (*ORDER, "analysis"), grid_plots.accuracy_curves,
           "Test accuracy vs epoch per dataset: mean over seeds (thick) with its bootstrap confidence band, and every "
           "seed (thin); a cross marks the last finite epoch of a diverged run.", per_protocol=True),
    Figure("final_accuracy", {"runs": GRID_RUNS}, ORDER, grid_plots.final_accuracy,
           "Final test accuracy of every seed (points) and its distribution (box: quartiles, whiskers 1.5 IQR) per dt "
           "variant and dataset; diverged runs have no final accuracy and are counted below the box. The dashed line "
           "and band: the backprop reference (same network, init, data, epochs and batch), mean and range over "
           "seeds.", per_protocol=True, reference=True),
    Figure("dead_units", {"epochs": GRID_EPOCHS}, ORDER, grid_plots.dead_units,
           "Units EP can no longer train, on the probe of test images after each epoch (mean over seeds): output "
           "units whose state is identical in both nudged phases on every sample (solid) and those meeting the "
           "analytic criterion, free-state drive below -beta on every sample (dashed); bottom: the same share for "
           "the hidden units.", per_protocol=True),
    Figure("seed_spread", {"epochs": GRID_EPOCHS}, (*ORDER, "analysis"), grid_plots.seed_spread,
           "Across-seed standard deviation of test accuracy (percentage points) at each epoch, per dataset and dt "
           "variant.", per_protocol=True),
    Figure("dt_distributions", {"dt": GRID_DT}, ORDER, grid_plots.dt_distributions,
           "The per-neuron time steps the runs used (drawn from each run's dt spec and seed, as training draws them), "
           "pooled over datasets, "
           "seeds and layers, one panel per variant.", mem_mb=4000),
    Figure("instability_counts", {"runs": GRID_RUNS, "epochs": GRID_EPOCHS},
           (*ORDER, "analysis"), grid_plots.instability_counts,
           "Number of runs per dataset and variant with a collapse (an epoch-to-epoch test-accuracy drop above the "
           "configured threshold), a divergence (non-finite weights or loss), or a class never predicted at the end "
           "of training.", per_protocol=True),
    Figure("free_residual", {"epochs": GRID_EPOCHS}, ORDER, grid_plots.free_residual,
           "Free-phase residual mean abs(s_T1 - s_(T1-1)) on the test set after each epoch (how far the relaxation "
           "is from its fixed point), per seed (thin) and mean over seeds (thick).", per_protocol=True),
    Figure("spectral_radius", {"table": f"{MECHANISM}/spectral.parquet"}, ("spectral", "variants"),
           mechanism_plots.spectral_radius_figure,
           "Linear stability of the free relaxation at the state it reaches after T1 steps (means over the probe, "
           "per run). Top: over training with each run's own dt, the slowest mode of the coupled (unsaturated) "
           "units, i.e. the largest eigenvalue of the Jacobian J = I - D + D diag(sigma') H restricted to them, and "
           "the dt-free coupling gain, the largest eigenvalue of H on those units (1 or more: no stable fixed point "
           "for any dt); thin = run, thick = mean over seeds. Bottom: at the end of training, the full spectral "
           "radius and the slowest coupled mode of each weights variant with its own dt and with swapped dt (HTS "
           "weights with uniform dt; uniform weights with the HTS dt of the same seed); one point per run, bar = "
           "median over runs. J is similar to a symmetric matrix, so its spectrum is real; saturated units "
           "contribute 1 - dt_i.", mechanism=True),
    Figure("eigenvalue_moduli", {"hist": f"{MECHANISM}/eigenvalue_hist.parquet"}, ("spectral", "variants"),
           mechanism_plots.eigenvalue_moduli_figure,
           "Distribution of the moduli of the relaxation Jacobian's eigenvalues at the end of training (own dt, "
           "state after T1 steps), pooled over seeds and probe samples, per variant: all free units (saturated "
           "units give 1 - dt_i) and the coupled units' modes only. Moduli at or above 1 (dashed line) are modes "
           "that do not contract.", mechanism=True),
    Figure("relaxation", {"epochs": GRID_EPOCHS}, (*ORDER, "free_steps"),
           mechanism_plots.relaxation_figure,
           "Free-phase relaxation over training on a probe of test images (recorded every epoch of the grid runs): "
           "mean steps until max abs(s_t - s_(t-1)) stays below the tolerance, share of samples still moving after "
           "T1 steps, and share of neurons whose update reverses direction between steps; per seed (thin) and mean "
           "over seeds (thick).", mechanism=True),
    Figure("landscape", {"summary": f"{MECHANISM}/landscape.csv"}, ("landscape",),
           mechanism_plots.landscape_figure,
           "dt landscape: short runs over dt mean (rows) x spread (columns; 0 = uniform), the spread being the s.d. "
           "of a clipped distribution. Mean final test accuracy over seeds, its s.d. across seeds, and runs that "
           "broke (diverged, collapsed = an epoch-to-epoch test-accuracy drop above collapse_drop, or chance-level "
           "final accuracy) as k/n.", mechanism=True),
    Figure("calibration", {"table": f"{CALIBRATION}/calibration.csv"}, ("calibration",),
           calibration_plots.calibration_figure,
           "Calibration on the validation split (training set minus its validation part): final validation "
           "accuracy of every search point, per seed (dots) and mean over seeds (bar), for EP with each searched "
           "protocol's reference variant and for the backprop reference on each dataset (one panel per search); "
           "red: the point the rule declared before the "
           "search selects (highest mean validation accuracy, ties to the simpler point). The test set takes no "
           "part.", section="calibration"),
    Figure("frontier", {"cells": f"{FRONTIER}/cells.csv", "curves": f"{FRONTIER}/curves.csv",
                        "critical": f"{FRONTIER}/critical.csv"}, ("frontier", "variants"),
           frontier_plots.frontier_figure,
           "Stability frontier: one stress axis from the calibrated protocol (learning rates of both layers "
           "multiplied) for the mean-matched uniform control and heterogeneous dt. Top: share of runs that failed "
           "(diverged, chance-level, a class never predicted at the end, or a collapse) per level with exact 95% "
           "intervals, the per-variant logistic fit on log level and its bootstrap band (seeds resampled); "
           "middle: the failed runs by the kind of failure that held first; bottom: each variant's critical level "
           "(50% failed) with its bootstrap 95% CI (arrows: outside the axis).", section="frontier"),
    Figure("confirmatory", {"tests": f"{CONFIRMATORY}/primary.csv"}, ("preregistration",),
           confirmatory_plots.forest_figure,
           "Preregistered primary tests, variant minus baseline paired by seed, per protocol, dataset and contrast. "
           "Left: mean difference of final test accuracy with its bootstrap 95% CI (shaded: the equivalence margin). "
           "Right: ratio of the s.d. across seeds with its bootstrap 95% CI (log scale; shaded: the margin). Colour: "
           "the Holm-adjusted verdict.", section="confirmatory"),
    Figure("factorial", {"runs": f"{FACTORIAL}/runs.csv", "effects": f"{FACTORIAL}/effects.csv"},
           ("datasets", "factorial"), factorial_plots.factorial_figure,
           "The dt mean x spread factorial, per dataset. Top: mean final test accuracy over seeds of the runs that "
           "did not fail (bars: s.d. across seeds) over the dt mean (log scale), one line per spread (the coefficient "
           "of variation of a clipped normal dt; uniform = none); k/n: failed runs of a cell. Bottom: the mixed "
           "model's contrasts (a random intercept per seed) with their 95% CIs: each uniform mean against the "
           "reference mean, and each spread against none at a matched mean and averaged over the means.",
           section="factorial"),
    Figure("robustness", {"summary": f"{ROBUSTNESS}/summary.csv"}, ORDER, robustness_plots.robustness_figure,
           "Robustness of the trained models: each variant's mean drop of test accuracy from its own clean accuracy "
           "(points, over seeds), one row per protocol and dataset, under Gaussian pixel noise, multiplicative weight "
           "noise (means over the noise draws, the same draws for every model), the free phase cut short at "
           "inference, and dt changed after training.", section="robustness"),
    Figure("sensitivity", {"cells": f"{SENSITIVITY}/cells.csv", "contrasts": f"{SENSITIVITY}/contrasts.csv"}, ORDER,
           sensitivity_plots.sensitivity_figure,
           "Where dt acts: one training key of the protocol changed at a time (columns: dataset and key). Top: mean "
           "final test accuracy of the runs that did not fail (bars: s.d. across seeds) per variant over the levels "
           "(open markers: the protocol's own point). Bottom: the paired difference of heterogeneity at a matched mean "
           "(red) and of the positive control (black) with their bootstrap 95% CIs.", section="sensitivity"),
    Figure("depth", {"cells": f"{DEPTH}/cells.csv", "residuals": f"{DEPTH}/residuals.csv"}, ORDER,
           depth_plots.depth_figure,
           "The question at depth (784-256-256-10, its own protocol). Left: mean final test accuracy of the runs "
           "that did not fail (bars: s.d. across seeds) per arm at the unconverged and the converged T1 (k/n: failed "
           "runs). Right: the free phase's residual per layer over the epochs, mean over seeds (line style: layer).",
           section="depth"),
)
BY_NAME = {figure.name: figure for figure in FIGURES}


def figure_files(protocols, exts=("pdf", "png"), mechanism: bool | None = None, section: str = "any") -> list[str]:
    """Every figure file of the study for these protocols (if asked: only mechanism figures or only the others;
    only the figures of one paper section, None being the grid's figure list)."""
    return [f"{stem}.{ext}" for figure in FIGURES
            if mechanism in (None, figure.mechanism) and section in ("any", figure.section)
            for _, stem in figure.outputs(protocols) for ext in exts]


def paper_figures(protocols, section: str | None = None) -> list[dict]:
    """The figures a paper part shows (``section``; None: the grid's figure list): name, path below figures/,
    caption and protocol, once per protocol for per-protocol figures (a paper rule's params)."""
    return [{"name": figure.name, "path": f"{stem.removeprefix(FIGURE_DIR + '/')}.pdf", "caption": figure.caption,
             "protocol": protocol}
            for figure in FIGURES if not figure.mechanism and figure.section == section
            for protocol, stem in figure.outputs(protocols)]


def figure_params(figure: Figure, config: Mapping) -> dict:
    """The config parts ``figure`` is drawn with (its rule's params, so that a change redraws it)."""
    return figure_slice(config, figure.settings)


def grid_protocol(figure: Figure, protocol: str | None, config: Mapping) -> str:
    """The protocol whose grid tables ``figure`` shows: its own for per-protocol figures, the mechanism section's
    (mechanism.spectral.protocol) for a mechanism figure, else the first of run_protocols (dt values, the same in
    every protocol)."""
    if figure.per_protocol:
        return protocol
    return config["mechanism"]["spectral"]["protocol"] if figure.mechanism else config["run_protocols"][0]


def make_figure(name: str, inputs: Mapping[str, str], outputs: Mapping[str, str], params: Mapping) -> None:
    """Draw figure ``name`` from the rule's input tables and params; write ``outputs["pdf"]`` and ``outputs["png"]``."""
    figure = BY_NAME[name]
    tables = {key: read_table(inputs[key]) for key in figure.tables}
    if figure.reference:  # an empty table without a backprop reference
        tables["reference"] = read_table(inputs["reference"]) if "reference" in inputs.keys() else \
            pd.DataFrame(columns=["dataset", "final_test_acc"])
    fig = figure.plot(**tables, **{key: params[key] for key in figure.settings})
    style.save(fig, outputs["pdf"], outputs["png"])
