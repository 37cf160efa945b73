"""The style every figure of the study shares: theme, panel sizes, one palette and one label per variant.

Every figure uses one palette and one label per variant, set by the variant's dt spec: uniform (constant dt)
variants in greys and blues, heterogeneous ones in warm colours, in the order of the config's ``variants``.
Datasets are shown by their ``dataset_label`` (which names a substitute split when one is used). Each plotting
function takes its tables and config parts as keyword arguments and returns the figure (see ``htsep.report.figures``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from ..ep.timesteps import DISTRIBUTIONS  # noqa: E402
from ..files import atomic_write  # noqa: E402

logging.getLogger("fontTools").setLevel(logging.WARNING)  # its subsetting chatter would fill the rule logs

UNIFORM_COLOURS = ["#4d4d4d", "#2166ac", "#92c5de", "#969696", "#053061"]
HTS_COLOURS = ["#d7301f", "#fd8d3c", "#c99700", "#8c2d04", "#e7298a", "#fdbb84"]
PANEL = (3.3, 2.6)  # inches per dataset panel (narrower when there are many: the page is about 7 in wide)
PAGE_WIDTH = 7.2


# ------------------------------------------------------------------------------------------- labels, colours


def _specs(dt) -> list[Mapping]:
    return list(dt) if isinstance(dt, list | tuple) else [dt]


def is_uniform(variant: Mapping) -> bool:
    """A variant whose every layer has one constant dt (a homogeneous control)."""
    return all(spec["distribution"] == "constant" for spec in _specs(variant["dt"]))


def _label(variant: Mapping, tex: bool) -> str:
    specs = _specs(variant["dt"])
    if any(spec != specs[0] for spec in specs) or specs[0].get("distribution") not in DISTRIBUTIONS:
        return variant["name"].replace("_", r"\_") if tex else variant["name"]
    spec = specs[0]
    if spec["distribution"] == "constant":
        return f"uniform $\\Delta t={spec['value']:g}$" if tex else f"uniform Δt={spec['value']:g}"
    if spec["distribution"] == "uniform":
        dash = "--" if tex else "–"
        return f"HTS (uniform {spec['low']:g}{dash}{spec['high']:g})"
    return f"HTS ({spec['distribution']})"


def variant_labels(variants: Sequence[Mapping], tex: bool = False) -> dict[str, str]:
    """Display name per variant, from its dt spec ("uniform Δt=0.2", "HTS (normal)"); the config name is appended
    where two variants would otherwise share a label."""
    labels = {v["name"]: _label(v, tex) for v in variants}
    counts = pd.Series(list(labels.values())).value_counts()
    name = (lambda n: n.replace("_", r"\_")) if tex else (lambda n: n)
    return {k: f"{lab} [{name(k)}]" if counts[lab] > 1 else lab for k, lab in labels.items()}


def variant_specs(names: Sequence[str], variants: Sequence[Mapping]) -> list[Mapping]:
    """The config's specs of the variants ``names`` in config order, then names the config lacks (sorted, with an
    unknown dt)."""
    known = [v for v in variants if v["name"] in set(names)]
    extra = sorted(set(names) - {v["name"] for v in variants})
    return known + [{"name": n, "dt": {"distribution": "unknown"}} for n in extra]


def variant_colours(variants: Sequence[Mapping]) -> dict[str, str]:
    """Uniform variants in greys/blues, heterogeneous ones in warm colours, each in config order."""
    colours, n_uniform, n_hts = {}, 0, 0
    for v in variants:
        if is_uniform(v):
            colours[v["name"]] = UNIFORM_COLOURS[n_uniform % len(UNIFORM_COLOURS)]
            n_uniform += 1
        else:
            colours[v["name"]] = HTS_COLOURS[n_hts % len(HTS_COLOURS)]
            n_hts += 1
    return colours


class Order:
    """Datasets and variants in config order (those in the data but not in the config come last), with their
    labels (LaTeX with ``tex``) and colours."""

    def __init__(self, frame: pd.DataFrame, datasets: Sequence[str], variants: Sequence[Mapping], tex: bool = False):
        present = set(frame["dataset"])
        self.datasets = [d for d in datasets if d in present] + sorted(present - set(datasets))
        self.dataset_labels = dict(zip(frame["dataset"], frame["dataset_label"], strict=False))
        self.variant_specs = variant_specs(frame["variant"].unique(), variants)
        self.variants = [v["name"] for v in self.variant_specs]
        self.labels = variant_labels(self.variant_specs, tex)
        self.colours = variant_colours(self.variant_specs)

    def handles(self) -> list[Line2D]:
        return [Line2D([], [], color=self.colours[v], lw=2, label=self.labels[v]) for v in self.variants]


def set_style() -> None:
    """The seaborn theme and font sizes of every figure."""
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.0,
                  rc={"axes.titlesize": 9, "axes.labelsize": 8.5, "legend.fontsize": 8, "xtick.labelsize": 7.5,
                      "ytick.labelsize": 7.5, "grid.linewidth": 0.5, "pdf.fonttype": 42})


def panels(n: int, sharey: bool = False, per: tuple[float, float] = PANEL):
    width = min(per[0] * n, max(PAGE_WIDTH, 2.3 * n))
    fig, axes = plt.subplots(1, n, figsize=(width, per[1]), squeeze=False, sharey=sharey, layout="constrained")
    return fig, list(axes[0])


def legend_below(fig, order: Order) -> None:
    """One legend for all panels, below them, in as many columns as the figure's width holds."""
    longest = max(len(order.labels[v]) for v in order.variants)
    per_item = 0.65 + 0.068 * longest  # inches: line sample + text at legend.fontsize 8
    ncols = max(1, min(len(order.variants), int(fig.get_size_inches()[0] // per_item)))
    fig.legend(handles=order.handles(), loc="outside lower center", ncols=ncols, frameon=False)


def save(fig, pdf: str | Path, png: str | Path) -> None:
    """Write ``fig`` to ``pdf`` and ``png`` atomically (reproducible PDF: no creation date) and close it."""
    atomic_write(pdf, lambda p: fig.savefig(p, format="pdf", metadata={"CreationDate": None}))
    atomic_write(png, lambda p: fig.savefig(p, format="png", dpi=200))
    plt.close(fig)


def epoch_axis(ax, epochs: pd.DataFrame) -> None:
    """Integer epoch ticks spanning the epochs of ``epochs``."""
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=6))
    lo, hi = int(epochs["epoch"].min()), int(epochs["epoch"].max())
    ax.set_xlim(lo - 0.2, hi + 0.2)
    ax.set_xlabel("Epoch")
