"""How many confirmatory seeds: for each contrast whose arms the exploratory grid has recorded (not those whose
baseline trains under a protocol of its own, which the grid does not train), the smallest effect
the paired tests find with the preregistered power at Holm's strictest level, by seed count, simulated from the
recorded spread (the arms' s.d. across seeds and their correlation through the shared seed).

The chosen count per (protocol, dataset, contrast) is the smallest of ``SEED_COUNTS`` whose resolution reaches the
preregistration's equivalence margins (a mean accuracy difference and an s.d. ratio); where none does, the largest
count and the resolution it reaches are stated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from ... import paired
from ...files import read_table, write_table
from .plan import family

SEED_COUNTS = (10, 15, 20, 25, 30, 40, 50)


def design(runs: pd.DataFrame, spec: Mapping, family_size: int, seed_counts: Sequence[int] = SEED_COUNTS
           ) -> pd.DataFrame:
    """One row per (protocol, dataset, contrast, seed count): the recorded spread, the resolution, whether it
    reaches the targets (the equivalence margins), and ``chosen`` on the smallest count that does (the largest where
    none does)."""
    alpha, targets = spec["alpha"] / family_size, spec["equivalence"]  # Holm's strictest step
    rows = []
    for (protocol, dataset), own in runs.groupby(["protocol", "dataset"], sort=True):
        for name, contrast in spec["contrasts"].items():
            if family(contrast) != "primary" or contrast.get("baseline_protocol"):  # designed: the primary family
                continue                                                            # within one protocol
            wide = own.pivot_table(index="seed", columns="variant", values="final_test_acc")
            if contrast["variant"] not in wide or contrast["baseline"] not in wide:
                continue
            observed = paired.spread(wide[contrast["variant"]], wide[contrast["baseline"]])
            if observed is None:
                continue
            options = []
            for n in seed_counts:
                found = {test: paired.resolution(test, observed, n, alpha, spec["power"], spec["simulations"],
                                                 spec["bootstrap_seed"]) for test in ("accuracy", "spread")}
                reaches = found["accuracy"] <= targets["accuracy"] and found["spread"] <= targets["sd_ratio"]
                options.append({"protocol": protocol, "dataset": dataset, "contrast": name,
                                **{k: v for k, v in observed.items() if k != "n_pairs"},
                                "n_recorded": observed["n_pairs"], "seeds": n, "alpha": alpha,
                                "detectable_accuracy": found["accuracy"], "detectable_sd_ratio": found["spread"],
                                "reaches_targets": bool(reaches)})
            first = next((i for i, o in enumerate(options) if o["reaches_targets"]), len(options) - 1)
            rows += [o | {"chosen": i == first} for i, o in enumerate(options)]
    return pd.DataFrame(rows)


def write_design(tables: Sequence[str], output: str, params: Mapping) -> None:
    """The design table from the grid's runs tables of every protocol (the exploratory seeds' accuracies)."""
    runs = pd.concat([read_table(path, "runs table") for path in tables], ignore_index=True)
    spec = params["preregistration"]
    primary = [c for c in spec["contrasts"].values() if family(c) == "primary"]
    write_table(output, design(runs, spec, len(primary) * len(params["datasets"]) * len(paired.TESTS)))
