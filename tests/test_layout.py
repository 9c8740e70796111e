"""Layout rules of the source tree, checked on the files themselves (docs/CONTRACTS.md, "Rules the tests enforce").

* every ``.py`` file says what it is for in its first line (a module docstring or a comment);
* a module of ``pipeline/``, ``flows/`` or ``model/`` longer than 500 lines says why in its docstring;
* ``pipeline/`` never imports prefect or torch (nor ``flows``/``model``, which do), even inside a function;
  ``model/`` never imports prefect (nor ``flows``);
* no module outside ``tests/`` imports a private name (``_x``) from another project module.

Each test lists every violation as ``path: reason``. Imports are read with ``ast``, so nothing is imported.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROJECT = ("pipeline", "flows", "model", "tests", "benchmarks")  # top-level packages (and script folders)
SIZED = ("pipeline", "flows", "model")
MAX_LINES = 500
LONG_REASON = re.compile(rf"(?:^|[.!?:;]\s)Longer than {MAX_LINES} lines because\b")
# Comments that are tool directives, not a description of the file.
PRAGMA = re.compile(r"#\s*(?:noqa|ruff:|type:|fmt:|pragma|mypy:|pylint:|-\*-|isort:)", re.IGNORECASE)
# Top-level modules a package must never import (flows and model pull prefect and torch in).
FORBIDDEN = {"pipeline": ("prefect", "torch", "flows", "model"), "model": ("prefect", "flows")}


def _files(*folders: str) -> list[Path]:
    return sorted(p for f in folders for p in (REPO / f).rglob("*.py") if "__pycache__" not in p.parts)


def _rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def _report(problems: list[str]) -> str:
    """One violation a line, ordered by file and line number (``path:line: reason`` or ``path: reason``)."""

    def key(problem: str) -> tuple[str, int]:
        where = problem.split(": ", 1)[0].split(":")
        return where[0], int(where[1]) if len(where) > 1 and where[1].isdigit() else 0

    return "\n".join(sorted(problems, key=key))


@cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _resolve(path: Path, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` reads from (relative imports resolved against ``path``)."""
    if not node.level:
        return node.module or ""
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _is_module(dotted: str) -> bool:
    target = REPO.joinpath(*dotted.split("."))
    return target.with_suffix(".py").is_file() or (target / "__init__.py").is_file()


def _imported_modules(tree: ast.Module, path: Path) -> list[tuple[int, str]]:
    """(line, dotted module) of every import anywhere in the file, ``importlib.import_module("x")`` included."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.lineno, _resolve(path, node)))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                found.append((node.lineno, node.args[0].value))
    return found


# --- (a) every file says what it is for -----------------------------------------------------------


def _first_line_problem(path: Path) -> str | None:
    text = path.read_text(encoding="utf-8")
    if ast.get_docstring(_tree(path)):
        return None  # a docstring is the first statement: only comments and blank lines can precede it
    lines = [line.strip() for line in text.splitlines()]
    if lines and lines[0].startswith("#!"):
        lines = lines[1:]
    first = next((line for line in lines if line), None)
    if first is None:
        return "empty file: add a docstring or comment saying what it is for"
    if first.startswith("#") and first.lstrip("#").strip() and not PRAGMA.match(first):
        return None
    return f"first line is not a docstring or a descriptive comment: {first[:60]!r}"


def test_every_file_starts_with_what_it_is_for() -> None:
    problems = [f"{_rel(p)}: {why}" for p in _files(*PROJECT) if (why := _first_line_problem(p))]
    assert not problems, _report(problems)


# --- (b) long modules say why ---------------------------------------------------------------------


def test_long_modules_say_why() -> None:
    problems = []
    for path in _files(*SIZED):
        n = len(path.read_text(encoding="utf-8").splitlines())
        doc = " ".join((ast.get_docstring(_tree(path)) or "").split())
        if n > MAX_LINES and not LONG_REASON.search(doc):
            problems.append(
                f"{_rel(path)}: {n} lines; split it, or say why in the module docstring "
                f'("Longer than {MAX_LINES} lines because ...")'
            )
    assert not problems, _report(problems)


# --- (c) what pipeline/ and model/ never import ---------------------------------------------------


def test_pipeline_and_model_never_import_the_orchestration() -> None:
    problems = []
    for package, banned in FORBIDDEN.items():
        for path in _files(package):
            for line, module in _imported_modules(_tree(path), path):
                top = module.split(".")[0]
                if top in banned or top.startswith("prefect"):
                    problems.append(f"{_rel(path)}:{line}: imports {module} ({package}/ must not import {top})")
    assert not problems, _report(problems)


# --- (d) private names stay in their module -------------------------------------------------------


def _private_imports(path: Path, tree: ast.Module | None = None) -> list[str]:
    """Private names this file takes from another project module: ``from pipeline.x import _y``, a private
    module (``pipeline/ingest/_common.py``) outside its own package, and ``mod._y`` on an imported module."""
    me = _module_name(path)
    my_package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    tree = tree or _tree(path)
    found: list[str] = []
    aliases: dict[str, str] = {}  # local name -> project module it is bound to

    def check_module(line: int, module: str) -> None:
        parts = module.split(".")
        for k, part in enumerate(parts):
            owner = ".".join(parts[:k])
            # a private module (pipeline/ingest/_common.py) is for the modules of its own package
            if _is_private(part) and not (my_package == owner or my_package.startswith(owner + ".")):
                found.append(f"{_rel(path)}:{line}: imports private module {module}")
                return

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in PROJECT:
                    check_module(node.lineno, alias.name)
                    if alias.asname:  # import pipeline.x as m: m._y is private
                        aliases[alias.asname] = alias.name
        elif isinstance(node, ast.ImportFrom):
            module = _resolve(path, node)
            if module.split(".")[0] not in PROJECT or module == me:
                continue
            check_module(node.lineno, module)
            for alias in node.names:
                if _is_module(f"{module}.{alias.name}"):
                    check_module(node.lineno, f"{module}.{alias.name}")
                    aliases[alias.asname or alias.name] = f"{module}.{alias.name}"
                elif _is_private(alias.name):
                    found.append(f"{_rel(path)}:{node.lineno}: imports {alias.name} from {module}")
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and aliases[node.value.id] != me
            and _is_private(node.attr)
        ):
            found.append(f"{_rel(path)}:{node.lineno}: uses {aliases[node.value.id]}.{node.attr}")
    return found


def test_no_module_imports_a_private_name_of_another() -> None:
    # tests/ may reach into a module's internals; the code may not.
    problems = [p for path in _files("pipeline", "flows", "model", "benchmarks") for p in _private_imports(path)]
    assert not problems, _report(problems)


# --- the checks themselves ------------------------------------------------------------------------


def test_the_checks_catch_what_they_should(tmp_path: Path) -> None:
    """The rules on small made-up files, so a check that silently passes everything is noticed."""
    doc = tmp_path / "doc.py"
    doc.write_text('#!/usr/bin/env python\n"""What it is for."""\n')
    comment = tmp_path / "comment.py"
    comment.write_text("# What it is for.\nx = 1\n")
    pragma = tmp_path / "pragma.py"
    pragma.write_text("# noqa: E501\nx = 1\n")
    bare = tmp_path / "bare.py"
    bare.write_text("import os\n")
    assert _first_line_problem(doc) is None and _first_line_problem(comment) is None
    assert _first_line_problem(pragma) and _first_line_problem(bare)
    assert LONG_REASON.search("A stage. Longer than 500 lines because the rule table is one unit.")
    assert not LONG_REASON.search("It is not longer than 500 lines because of anything.")
    lazy = ast.parse("def f():\n    import torch\n    importlib.import_module('prefect.tasks')\n")
    assert [m for _, m in _imported_modules(lazy, REPO / "pipeline" / "x.py")] == ["torch", "prefect.tasks"]
    private = ast.parse(
        "from pipeline.schema import _x, DOC_SCHEMA\n"  # a private name of another module
        "from pipeline.ingest._common import y\n"  # a private module outside its package
        "from pipeline import atomic\n"
        "def f():\n    return atomic._read_umask()\n"  # a private name through the module
    )
    found = _private_imports(REPO / "pipeline" / "made_up.py", private)
    assert [f.split(": ", 1)[1] for f in found] == [
        "imports _x from pipeline.schema",
        "imports private module pipeline.ingest._common",
        "uses pipeline.atomic._read_umask",
    ]
    own = ast.parse("from pipeline.ingest._common import y\nfrom ._decode import z\n")
    assert _private_imports(REPO / "pipeline" / "ingest" / "made_up.py", own) == []
