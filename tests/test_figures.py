"""The figure registry (htsep.report.figures): each figure once, drawn by a function that takes exactly its tables and
config parts, made by one workflow rule, shown in the paper and captioned in the report."""

import copy
import inspect
import re
from types import SimpleNamespace

import pytest

from htsep.config import FIGURE_SETTINGS, WRITTEN_TEXTS
from htsep.experiments.grid import paper
from htsep.report import tex as tex_module
from htsep.report.figures import BY_NAME, FIGURES, figure_params, paper_figures
from htsep.study import load_config

from .conftest import REPO, copy_workflow, snakemake


def test_names_rules_and_files_are_unique():
    for key in ("name", "rule", "stem"):
        values = [getattr(figure, key) for figure in FIGURES]
        assert len(set(values)) == len(values), key
    assert BY_NAME == {figure.name: figure for figure in FIGURES}


@pytest.mark.parametrize("figure", FIGURES, ids=lambda f: f.name)
def test_plot_takes_the_tables_and_config_parts(figure):
    parameters = inspect.signature(figure.plot).parameters
    assert list(parameters) == [*figure.tables, *(["reference"] if figure.reference else []), *figure.settings]
    assert all(p.default is inspect.Parameter.empty for p in parameters.values())
    assert set(figure.settings) <= set(FIGURE_SETTINGS) and figure.caption.strip()
    assert all(path.endswith((".parquet", ".csv")) for path in figure.tables.values())
    config = load_config([REPO / "config/config.yaml", REPO / "config/test.yaml"])
    assert list(figure_params(figure, config)) == list(figure.settings)


def test_the_paper_shows_every_figure_once():
    sections = sorted(p for p in (REPO / "src/htsep/experiments").glob("*/templates/*.tex.j2")
                      if p.parts[-3] != "grid")  # every experiment's section but the grid's, rendered below
    tex = "".join(path.read_text() for path in [REPO / "paper/paper.tex", REPO / "paper/mechanism.tex", *sections])
    protocols = ["lab", "calibrated"]
    # the grid's figure list, and the figures of its results (each protocol's part shows its own with the same macro,
    # tests/test_paired_effects.py)
    figures = paper_figures(protocols) + paper_figures(protocols, "results")
    tex += tex_module.template(paper.TEMPLATES / "grid_figures.tex.j2").render(
        **paper.grid_figures_values(SimpleNamespace(setup={"figures": figures})))
    shown = re.findall(r"\\(?:figwidth|includegraphics)(?:\[[^\]]*\])?\{(?:\.\./figures/)?([^}]+)\.pdf\}", tex)
    assert sorted(shown) == sorted(stem.removeprefix("figures/") for figure in FIGURES
                                   for _, stem in figure.outputs(protocols))


def test_one_rule_per_figure_captioned_from_the_registry(tmp_path):
    workdir = copy_workflow(tmp_path)
    listed = snakemake(workdir, "--configfile", "config/test.yaml", "--list-rules").stdout.split()
    protocols = load_config([REPO / "config/config.yaml", REPO / "config/test.yaml"])["run_protocols"]
    assert len(protocols) == 2
    assert all(figure.rule(p) in listed for figure in FIGURES for p, _ in figure.outputs(protocols))
    caption = (REPO / "workflow/report/figure.rst").read_text()
    assert caption.strip() == "{{ snakemake.params.caption }}"


def test_figure_params_leave_out_the_written_texts():
    """Judging an outcome or amending a prediction reruns no figure; a setting a figure draws still does."""
    config = load_config([REPO / "config/config.yaml", REPO / "config/test.yaml"])
    before = {figure.name: figure_params(figure, config) for figure in FIGURES}

    def rewrite(part):
        if isinstance(part, dict):
            for key, value in part.items():
                part[key] = "rewritten" if key in WRITTEN_TEXTS else rewrite(value)
        elif isinstance(part, list):
            part[:] = [rewrite(v) for v in part]
        return part

    edited = rewrite(copy.deepcopy(config))
    assert edited["frontier"]["positive_control"]["prediction"] == "rewritten"
    assert {figure.name: figure_params(figure, edited) for figure in FIGURES} == before
    edited["frontier"]["axes"] = {**edited["frontier"]["axes"], "extra": {"levels": [1]}}
    assert figure_params(BY_NAME["frontier"], edited) != before["frontier"]
