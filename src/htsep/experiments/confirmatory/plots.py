"""The confirmatory runs' figure: a forest plot (htsep.report.forest) of the paired effects of each preregistered
contrast with their CIs, per protocol and dataset."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from ...report.forest import VERDICT_COLOURS, forest


def forest_figure(tests: pd.DataFrame, preregistration: Mapping):
    """Left: mean paired difference of final test accuracy (percentage points) with its bootstrap CI and the
    equivalence margin; right: s.d. ratio with its CI (log scale) and the margin; one row per protocol, dataset and
    contrast, coloured by the Holm-adjusted verdict."""
    accuracy = tests[tests["test"] == "accuracy"].reset_index(drop=True)
    spreads = tests[tests["test"] == "spread"].set_index(["protocol", "dataset", "contrast"])
    rows = []
    for row in accuracy.itertuples():
        spread = spreads.loc[(row.protocol, row.dataset, row.contrast)]
        rows.append({"label": f"{row.protocol} · {row.dataset_label} · {row.contrast}", "difference": row.effect,
                     "difference_low": row.ci_low, "difference_high": row.ci_high, "difference_verdict": row.verdict,
                     "ratio": spread["effect"], "ratio_low": spread["ci_low"], "ratio_high": spread["ci_high"],
                     "ratio_verdict": spread["verdict"]})
    return forest(pd.DataFrame(rows), list(VERDICT_COLOURS), preregistration["equivalence"])
