"""The package's shape: layers import downwards only, experiments are independent folders, modules stay readable."""

from pathlib import Path

import pytest

from htsep import fingerprint

PACKAGE = fingerprint.PACKAGE
MODULES = sorted(".".join(p.relative_to(PACKAGE).with_suffix("").parts) for p in PACKAGE.rglob("*.py")
                 if p.name != "__init__.py")
EXPERIMENTS = sorted(p.name for p in (PACKAGE / "experiments").iterdir() if (p / "__init__.py").exists())


def imported(module: str) -> set[str]:
    """Every htsep module ``module`` imports, transitively (itself excluded)."""
    return set(fingerprint.closure(module)) - {module}


@pytest.mark.parametrize("module", [m for m in MODULES if m.startswith(("ep.", "data."))])
def test_model_and_data_import_no_training_experiment_or_report(module):
    assert not {m for m in imported(module) if m.startswith(("training.", "experiments.", "report."))}


@pytest.mark.parametrize("module", [m for m in MODULES if m.startswith("experiments.")])
def test_no_experiment_imports_another(module):
    own = module.split(".")[1]
    others = {m for m in imported(module) if m.startswith("experiments.") and m.split(".")[1] != own}
    assert not others, f"{module} imports {sorted(others)}"


def test_training_and_shared_modules_import_no_experiment_or_report():
    lower = [m for m in MODULES if m.startswith("training.") or "." not in m and m not in ("study", "cli")]
    for module in lower:
        assert not {m for m in imported(module) if m.startswith(("experiments.", "report."))}, module


def test_experiments_are_folders_of_the_same_shape():
    assert EXPERIMENTS == ["calibration", "confirmatory", "depth", "factorial", "frontier", "grid", "mechanism",
                           "robustness", "sensitivity"]
    for name in EXPERIMENTS:
        folder = PACKAGE / "experiments" / name
        assert (folder / "paper.py").exists() and (folder / "plots.py").exists(), name
        assert list((folder / "templates").glob("*.tex.j2")), name
        assert (Path(__file__).parents[1] / "workflow" / "rules" / f"{name}.smk").exists() or name == "grid"


def test_every_package_init_is_a_docstring_and_at_most_lazy_exports():
    for init in PACKAGE.rglob("__init__.py"):
        tree = fingerprint.ast.parse(init.read_text())
        assert fingerprint.ast.get_docstring(tree), init
        top_imports = [n for n in tree.body if isinstance(n, fingerprint.ast.Import | fingerprint.ast.ImportFrom)]
        assert all(getattr(n, "module", None) is None and [a.name for a in n.names] == ["importlib"]
                   for n in top_imports), f"{init} imports eagerly"


def test_every_non_python_source_is_fingerprinted():
    claimed = {path for module in fingerprint.RESOURCES for path in fingerprint.resources(module)}
    sources = {p for p in PACKAGE.rglob("*") if p.suffix in (".cpp", ".j2", ".h", ".cu")}
    assert sources and sources == claimed


def test_few_top_level_modules_and_none_too_long():
    top = [m for m in MODULES if "." not in m]
    assert len(top) <= 13, top  # 13: searches, shared by calibration and depth
    long = {m: n for m in MODULES if (n := len(fingerprint.module_path(m).read_text().splitlines())) > 400}
    assert not long, long


def test_kernel_users_are_the_training_rules():
    scripts = sorted((Path(__file__).parents[1] / "workflow" / "scripts").glob("*.py"))
    users = {s.name for s in scripts if "ep.fused" in fingerprint.closure(*fingerprint.script_modules(s))}
    assert {"train.py", "train_batch.py", "calibrate_run.py", "frontier_train.py", "mech_spectral.py"} <= users
    assert not {"stats.py", "figure.py", "aggregate.py", "paper.py", "paper_macros.py", "calibration.py"} & users
