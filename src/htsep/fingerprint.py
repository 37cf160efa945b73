"""Fingerprints of the library code a rule or a run executes: code is an input, so an edit reruns what it changes.

``code_fingerprint(*modules)`` hashes the parsed source of the named htsep modules (dotted names below ``htsep``,
e.g. ``"ep.model"``) and of every htsep module they import, transitively (absolute and relative imports, inside
functions too), plus the non-Python sources a module executes (``RESOURCES``: the C++ the fused kernel compiles,
the templates a paper part renders). Parsed means comments, docstrings and layout do not count: such edits keep the
fingerprint, any other edit changes it. Package ``__init__`` files hold docstrings and lazy re-exports only and are
not followed, so e.g. the statistics do not depend on the model code. ``script_fingerprint(path)`` is the same for
the htsep modules a workflow script imports.
"""

from __future__ import annotations

import ast
import hashlib
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).parent
# module -> the non-Python sources it executes (globs relative to the module's folder): the kernel's C++, and each
# experiment's templates, rendered by its paper module
RESOURCES = {"ep.fused": ["csrc/ep_cpu.cpp"], "report.provenance": ["templates/*.tex.j2"],
             **{f"experiments.{folder.name}.paper": ["templates/*.tex.j2"]
                for folder in sorted((PACKAGE / "experiments").iterdir()) if (folder / "templates").is_dir()}}


def module_path(module: str) -> Path | None:
    """The source file of htsep module ``module`` ('a.b' -> a/b.py, or a/b/__init__.py for a package)."""
    base = PACKAGE.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def is_package(module: str) -> bool:
    path = module_path(module)
    return path is not None and path.name == "__init__.py"


def _absolute(module: str, node: ast.ImportFrom) -> str | None:
    """The dotted htsep name (relative to htsep; '' for htsep itself) that ``node`` imports from, or None for a
    module outside htsep."""
    if node.level:
        parts = module.split(".")
        parts = parts if is_package(module) else parts[:-1]  # a package's own folder, a module's parent
        if node.level - 1 > len(parts):
            return None
        base = parts[:len(parts) - (node.level - 1)]
        return ".".join(base + (node.module.split(".") if node.module else []))
    if node.module == "htsep" or (node.module or "").startswith("htsep."):
        return node.module.partition(".")[2]
    return None


def htsep_imports(tree: ast.AST, module: str = "") -> set[str]:
    """htsep modules (dotted, relative to htsep) imported anywhere in ``tree``, the source of ``module`` ('' for a
    script outside the package: relative imports are then ignored); package ``__init__``s are left out."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.partition(".")[2] for a in node.names if a.name.startswith("htsep.")}
        elif isinstance(node, ast.ImportFrom):
            if node.level and not module:
                continue
            base = _absolute(module, node)
            if base is None:
                continue
            for alias in node.names:  # `from pkg import name`: the submodule pkg.name if there is one, else pkg
                sub = f"{base}.{alias.name}" if base else alias.name
                names.add(sub if module_path(sub) is not None else base)
    return {n for n in names if n and module_path(n) is not None and not is_package(n)}


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
    path = module_path(module)
    if path is None:
        raise ValueError(f"htsep has no module {module!r}")
    tree = ast.parse(path.read_text(), filename=str(path))
    return ast.dump(_strip_docstrings(tree)), frozenset(htsep_imports(tree, module))


def closure(*modules: str) -> list[str]:
    """The named modules and every htsep module they import, transitively (sorted)."""
    seen, todo = set(), list(modules)
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(_parsed(module)[1])
    return sorted(seen)


def resources(module: str) -> list[Path]:
    """The non-Python files ``module`` executes (RESOURCES), sorted."""
    folder = module_path(module).parent
    return sorted(path for pattern in RESOURCES.get(module, []) for path in folder.glob(pattern))


@cache
def code_fingerprint(*modules: str) -> str:
    digest = hashlib.sha256()
    for module in closure(*modules):
        digest.update(f"{module}\0{_parsed(module)[0]}\0".encode())
        for source in resources(module):
            digest.update(f"{source.name}\0".encode() + source.read_bytes())
    return digest.hexdigest()[:16]


def script_modules(script: str | Path) -> list[str]:
    """The htsep modules the workflow script ``script`` imports directly (sorted)."""
    return sorted(htsep_imports(ast.parse(Path(script).read_text())))


def script_fingerprint(script: str | Path) -> str:
    """code_fingerprint of the htsep modules that the workflow script ``script`` imports."""
    return code_fingerprint(*script_modules(script))
