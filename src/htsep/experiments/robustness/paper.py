"""The paper's robustness section (``paper/generated/robustness.tex``), written by ``templates/robustness.tex.j2``
from the robustness tables (htsep.experiments.robustness.analysis): the design, per protocol a table of the
preregistered contrasts at the strongest level of each perturbation, and how many of all paired comparisons held
after Holm's correction."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from ...files import read_table, write_text
from ...report.tex import template, tex_escape

TEMPLATE = Path(__file__).with_name("templates") / "robustness.tex.j2"
SHORT = {"input_noise": "input noise", "weight_noise": "weight noise", "free_steps": "inference", "dt_swap": "dt"}


def strongest(effects: pd.DataFrame) -> pd.DataFrame:
    """Per protocol, dataset, contrast and perturbation the comparison at its strongest level (noise: the largest;
    free steps: the fewest) and every dt condition."""
    def pick(group: pd.DataFrame) -> pd.DataFrame:
        perturbation = group["perturbation"].iloc[0]
        if perturbation == "dt_swap":
            return group
        level = group["level"].min() if perturbation == "free_steps" else group["level"].max()
        return group[group["level"] == level]
    keys = ["protocol", "dataset", "contrast", "perturbation"]
    return pd.concat([pick(g) for _, g in effects.groupby(keys, sort=False)], ignore_index=True)


def robustness_text(inputs: Mapping[str, str], output: str | Path, params: Mapping) -> None:
    """Write ``paper/generated/robustness.tex`` from the runs, summary and effects tables."""
    runs = read_table(inputs["runs"], "robustness runs")
    effects = read_table(inputs["effects"], "robustness effects")
    spec, alpha = params["robustness"], params["robustness"]["alpha"]
    named = list(params["contrasts"])
    labels = dict(zip(runs["dataset"], runs["dataset_label"], strict=False))
    protocols = []
    for protocol, own in runs.groupby("protocol", sort=False):
        mine = effects[(effects["protocol"] == protocol) & effects["contrast"].isin(named)] if len(effects) else effects
        shown = strongest(mine) if len(mine) else mine
        rows = [{**r, "dataset": tex_escape(labels[r["dataset"]]),
                 "arms": tex_escape(f"{r['variant']} - {r['baseline']}"),
                 "condition": tex_escape(f"{SHORT[r['perturbation']]}: {r['condition']}")}
                for r in shown.to_dict("records")]
        every = effects[effects["protocol"] == protocol] if len(effects) else effects
        protocols.append({
            "name": tex_escape(protocol), "n_models": len(own), "n_seeds": own["seed"].nunique(),
            "variants": [tex_escape(v) for v in own["variant"].unique()], "rows": rows,
            "n_tests": int(every["p"].notna().sum()) if len(every) else 0,
            "held": [{"what": tex_escape(f"{r['contrast']}, {labels[r['dataset']]}, {r['condition']}"), **r}
                     for r in every[every["p_holm"] < alpha].to_dict("records")] if len(every) else [],
            "clean_gap": float((own["clean_accuracy"] - own["recorded_accuracy"]).abs().max()),
            "n_failed": int(own["failed"].sum()),
            "failed": [tex_escape(f"{r['dataset']}/{r['variant']}/seed{r['seed']}")
                       for r in own[own["failed"]].to_dict("records")],
        })
    write_text(output, template(TEMPLATE).render(
        protocols=protocols, spec=spec, caption=tex_escape(params["caption"]),
        heterogeneous=tex_escape(spec["dt_swap"]["heterogeneous"])))
