"""Code fingerprints follow exactly the code a rule executes: its imports (in subpackages too) and its resources."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from htsep import fingerprint

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((REPO / "workflow" / "scripts").glob("*.py"))
LOADED = """
import importlib, json, os, sys
for name in json.loads(sys.argv[1]):  # third-party imports, loaded once: a fork per module set starts warm
    try:
        importlib.import_module(name)
    except ImportError:  # an optional dependency (htsep imports it where it can)
        pass
for modules in json.loads(sys.argv[2]):
    sys.stdout.flush()
    if os.fork() == 0:
        for name in modules:
            importlib.import_module("htsep." + name)
        print(json.dumps(sorted(n.removeprefix("htsep.") for n, m in sys.modules.items()
                                if n.startswith("htsep.") and not m.__file__.endswith("__init__.py"))), flush=True)
        os._exit(0)
    assert os.wait()[1] == 0, modules
"""


def third_party_imports() -> list[str]:
    """Every module outside htsep and the standard library that a module of htsep imports."""
    names = set()
    for path in fingerprint.PACKAGE.rglob("*.py"):
        for node in fingerprint.ast.walk(fingerprint.ast.parse(path.read_text())):
            if isinstance(node, fingerprint.ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, fingerprint.ast.ImportFrom) and node.level == 0:
                names.add(node.module)
    return sorted(n for n in names if n.split(".")[0] not in sys.stdlib_module_names and n.split(".")[0] != "htsep")


def loaded_modules(module_sets: list[tuple[str, ...]]) -> list[list[str]]:
    """Per module set, the htsep modules (packages left out) in sys.modules after importing it in an interpreter
    that has loaded no htsep module (a fork of one that loaded only third-party libraries)."""
    out = subprocess.run([sys.executable, "-c", LOADED, json.dumps(third_party_imports()), json.dumps(module_sets)],
                         capture_output=True, text=True, check=True, timeout=600)
    return [json.loads(line) for line in out.stdout.splitlines()]


def test_closure_of_every_rule_script_is_what_python_loads():
    wanted = {script.name: tuple(fingerprint.script_modules(script)) for script in SCRIPTS}
    assert all(wanted.values()), "every rule script calls one function of htsep"
    module_sets = sorted(set(wanted.values()))
    loaded = dict(zip(module_sets, loaded_modules(module_sets), strict=True))
    for name, modules in wanted.items():
        assert fingerprint.closure(*modules) == loaded[modules], name


def test_imports_are_followed_in_subpackages():
    """Absolute, relative (one and two levels up) and `from package import module` forms."""
    tree = fingerprint.ast.parse(
        "import htsep.fingerprint\nfrom htsep.files import write_json\nfrom . import seeding\nfrom .config import x\n"
        "def f():\n    from htsep import cli\n")
    assert fingerprint.htsep_imports(tree, "pipeline") == {"fingerprint", "files", "seeding", "config", "cli"}
    assert fingerprint.htsep_imports(tree) == {"fingerprint", "files", "cli"}  # a script: no relative imports


def test_relative_imports_resolve_from_a_subpackage(tmp_path, monkeypatch):
    package = tmp_path / "htsep"
    for path, text in {"__init__.py": "", "top.py": "", "sub/__init__.py": "", "sub/a.py": "from . import b\n",
                       "sub/b.py": "from ..top import x\nfrom .deeper import c\n", "sub/deeper/__init__.py": "",
                       "sub/deeper/c.py": "import htsep.top\n"}.items():
        (package / path).parent.mkdir(parents=True, exist_ok=True)
        (package / path).write_text(text)
    monkeypatch.setattr(fingerprint, "PACKAGE", package)
    fingerprint._parsed.cache_clear()
    try:
        assert fingerprint.closure("sub.a") == ["sub.a", "sub.b", "sub.deeper.c", "top"]
    finally:
        fingerprint._parsed.cache_clear()


def _all_fingerprints() -> dict[str, str]:
    fingerprint._parsed.cache_clear()
    fingerprint.code_fingerprint.cache_clear()
    return {script.name: fingerprint.script_fingerprint(script) for script in SCRIPTS}


@pytest.mark.parametrize("owner", sorted(fingerprint.RESOURCES))
def test_editing_a_resource_reruns_exactly_the_rules_that_use_it(tmp_path, monkeypatch, owner):
    copy = tmp_path / "htsep"
    shutil.copytree(fingerprint.PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(fingerprint, "PACKAGE", copy)
    try:
        before = _all_fingerprints()
        edited = fingerprint.resources(owner)
        assert edited, f"RESOURCES of {owner} match no file"
        for path in edited:
            path.write_bytes(path.read_bytes() + b"\n")  # even a layout edit of C++ or a template counts
        after = _all_fingerprints()
        users = {script.name for script in SCRIPTS
                 if owner in fingerprint.closure(*fingerprint.script_modules(script))}
        assert users and users != set(before), owner
        assert {name for name in before if before[name] != after[name]} == users
    finally:
        fingerprint._parsed.cache_clear()
        fingerprint.code_fingerprint.cache_clear()

