"""Fingerprints of the library code a rule or a run executes: code is an input, so an edit reruns what it changes.

``code_fingerprint(*modules)`` hashes the parsed source of the named htsep modules and of every htsep module they
import, transitively (imports inside functions included), plus the non-Python sources a module executes: the C++
the fused kernel compiles and the paper's templates. Parsed means comments, docstrings and layout do not count:
such edits keep the fingerprint, any other edit changes it. The package ``__init__`` (re-exports only) is not
followed, so e.g. the statistics do not depend on the model code. ``script_fingerprint(path)`` is the same for
the htsep modules a workflow script imports.
"""

from __future__ import annotations

import ast
import hashlib
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).parent
# module -> the non-Python sources it executes: the C++ it compiles, the templates it renders
RESOURCES = {"fused": ["csrc/relax_one_hidden.cpp"], "paper": ["templates/*.tex.j2"]}


def _path(module: str) -> Path:
    return PACKAGE / f"{module}.py"


def _htsep_imports(tree: ast.AST, relative_ok: bool) -> set[str]:
    """htsep module names (e.g. 'stats') imported anywhere in ``tree``."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[1] for a in node.names if a.name.startswith("htsep.")}
        elif isinstance(node, ast.ImportFrom):
            if node.level and relative_ok:
                base = node.module
            elif not node.level and node.module and (node.module == "htsep" or node.module.startswith("htsep.")):
                base = node.module.partition(".")[2] or None
            else:
                continue
            names |= {base.split(".")[0]} if base else {a.name for a in node.names}
    return {n for n in names if n != "__init__" and _path(n).exists()}


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return tree


@cache
def _parsed(module: str) -> tuple[str, frozenset[str]]:
    tree = ast.parse(_path(module).read_text(), filename=str(_path(module)))
    return ast.dump(_strip_docstrings(tree)), frozenset(_htsep_imports(tree, relative_ok=True))


def closure(*modules: str) -> list[str]:
    """The named modules and every htsep module they import, transitively (sorted)."""
    seen, todo = set(), list(modules)
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(_parsed(module)[1])
    return sorted(seen)


@cache
def code_fingerprint(*modules: str) -> str:
    digest = hashlib.sha256()
    for module in closure(*modules):
        digest.update(f"{module}\0{_parsed(module)[0]}\0".encode())
        for pattern in RESOURCES.get(module, []):
            for source in sorted(PACKAGE.glob(pattern)):
                digest.update(f"{source.name}\0".encode() + source.read_bytes())
    return digest.hexdigest()[:16]


def script_fingerprint(script: str | Path) -> str:
    """code_fingerprint of the htsep modules that the workflow script ``script`` imports."""
    modules = _htsep_imports(ast.parse(Path(script).read_text()), relative_ok=False)
    return code_fingerprint(*sorted(modules))
