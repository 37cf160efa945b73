"""How many confirmatory seeds: for each contrast whose arms the exploratory grid has recorded, the smallest effect
the paired tests find with the preregistered power at Holm's strictest level, by seed count, simulated from the
recorded spread (the arms' s.d. across seeds and their correlation through the shared seed).

The chosen count per (protocol, dataset, contrast) is the smallest of ``SEED_COUNTS`` whose resolution reaches the
preregistration's equivalence margins (a mean accuracy difference and an s.d. ratio); where none does, the largest
count and the resolution it reaches are stated.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ... import paired
from ...files import read_table, write_table
from .primary import EFFECTS, TESTS

SEED_COUNTS = (10, 15, 20, 25, 30, 40, 50)


def _spread(runs: pd.DataFrame, variant: str, baseline: str) -> dict | None:
    """The recorded spread of a contrast: s.d. of each arm across seeds and their correlation (paired by seed)."""
    wide = runs.pivot_table(index="seed", columns="variant", values="final_test_acc")
    if variant not in wide or baseline not in wide:
        return None
    a, b = paired.pairs(wide[variant].to_numpy(), wide[baseline].to_numpy())
    if len(a) < 3:
        return None
    r = float(np.corrcoef(a, b)[0, 1]) if np.ptp(a) and np.ptp(b) else 0.0
    return {"sd_variant": float(a.std(ddof=1)), "sd_baseline": float(b.std(ddof=1)), "correlation": r,
            "sd_difference": float(np.std(a - b, ddof=1)), "n_recorded": len(a)}


def resolution(spread: Mapping, n: int, alpha: float, power: float, sims: int, seed: int) -> dict[str, float]:
    """Smallest detectable mean difference (Wilcoxon) and s.d. ratio (Pitman-Morgan) with ``n`` paired seeds."""
    sd, r = spread["sd_baseline"] or 1e-6, min(max(spread["correlation"], 0.0), 0.99)
    sd_d = spread["sd_difference"] or 1e-6

    def differences(effect, rng):
        return rng.normal(effect, sd_d, n), np.zeros(n)

    def ratios(ratio, rng):
        common = rng.normal(0, 1, n)
        base = sd * (math.sqrt(r) * common + math.sqrt(1 - r) * rng.normal(0, 1, n))
        return ratio * sd * (math.sqrt(r) * common + math.sqrt(1 - r) * rng.normal(0, 1, n)), base

    return {"accuracy": paired.detectable(EFFECTS["accuracy"], differences, lambda x, y: paired.wilcoxon(x, y)["p"],
                                          alpha, power, sims, seed),
            "spread": paired.detectable(EFFECTS["spread"], ratios,
                                        lambda x, y: paired.pitman_morgan(x, y, 0, 0.95, 0)["p"], alpha, power, sims,
                                        seed)}


def design(runs: pd.DataFrame, spec: Mapping, family_size: int, seed_counts: Sequence[int] = SEED_COUNTS
           ) -> pd.DataFrame:
    """One row per (protocol, dataset, contrast, seed count): the recorded spread, the resolution, whether it
    reaches the targets (the equivalence margins), and ``chosen`` on the smallest count that does (the largest where
    none does)."""
    alpha, targets = spec["alpha"] / family_size, spec["equivalence"]  # Holm's strictest step
    rows = []
    for (protocol, dataset), own in runs.groupby(["protocol", "dataset"], sort=True):
        for name, contrast in spec["contrasts"].items():
            spread = _spread(own, contrast["variant"], contrast["baseline"])
            if spread is None:
                continue
            options = []
            for n in seed_counts:
                found = resolution(spread, n, alpha, spec["power"], spec["simulations"], spec["bootstrap_seed"])
                reaches = found["accuracy"] <= targets["accuracy"] and found["spread"] <= targets["sd_ratio"]
                options.append({"protocol": protocol, "dataset": dataset, "contrast": name, **spread, "seeds": n,
                                "alpha": alpha, "detectable_accuracy": found["accuracy"],
                                "detectable_sd_ratio": found["spread"], "reaches_targets": bool(reaches)})
            first = next((i for i, o in enumerate(options) if o["reaches_targets"]), len(options) - 1)
            rows += [o | {"chosen": i == first} for i, o in enumerate(options)]
    return pd.DataFrame(rows)


def write_design(tables: Sequence[str], output: str, params: Mapping) -> None:
    """The design table from the grid's runs tables of every protocol (the exploratory seeds' accuracies)."""
    runs = pd.concat([read_table(path, "runs table") for path in tables], ignore_index=True)
    spec = params["preregistration"]
    family = len(spec["contrasts"]) * len(params["datasets"]) * len(TESTS)
    write_table(output, design(runs, spec, family))
