"""Content-keyed, crash-safe storage of stage outputs.

Every unit of work (one stage on one shard, or one global step) is keyed by a hash of its inputs'
keys, its stage config and the version of the code that unit runs: the project modules its stage
imports (followed import by import through ``pipeline`` and ``model``), the source of the task that
drives it and ``UNIT_FORMAT``. Editing the report therefore recomputes no document unit, and editing a
filter rule recomputes the filter stage and what follows it, nothing before it. Outputs go to a
temporary folder renamed into place only when complete, so a run killed at any point loses nothing
finished and a rerun skips it.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import threading
import uuid
from collections.abc import Callable
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import xxhash
from pydantic import BaseModel

import pipeline

PACKAGE_ROOT = Path(pipeline.__file__).resolve().parent.parent
_CODE_DIRS = ("pipeline", "flows", "model")
# Packages whose modules are followed when versioning a unit: the curation and model code. The flows
# package only orchestrates; the task that drives a unit is versioned by its own source instead.
VERSIONED_PACKAGES = ("pipeline", "model")
# Bump when the layout of a unit folder (file names, done.json fields) changes: every unit recomputes.
UNIT_FORMAT = 2


@lru_cache(maxsize=1)
def code_version() -> str:
    """Version plus a hash of every curation, flow and model source: names the whole tree in a manifest."""
    h = xxhash.xxh3_64()
    for d in _CODE_DIRS:
        for path in sorted((PACKAGE_ROOT / d).rglob("*.py")):
            h.update(path.relative_to(PACKAGE_ROOT).as_posix().encode())
            h.update(path.read_bytes())
    return f"{pipeline.__version__}+{h.hexdigest()[:12]}"


def _source(path: Path) -> bytes:
    """A module's source (one place, so a test can stand in an edited module)."""
    return path.read_bytes()


def _module_file(name: str) -> Path | None:
    """The file of project module ``name`` (a module or a package's ``__init__``), or None."""
    base = PACKAGE_ROOT.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imported(name: str, path: Path) -> list[str]:
    """Every module ``name`` imports, at any depth of the file (function-level imports count)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(_source(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.append(module)
            found += [f"{module}.{alias.name}" for alias in node.names]  # `from pkg import submodule`
    return found


@cache
def module_closure(roots: tuple[str, ...]) -> tuple[str, ...]:
    """Files (relative to the checkout) of ``roots`` and every ``pipeline``/``model`` module they import,
    transitively, with the packages around them."""
    seen: dict[str, Path] = {}
    stack = list(roots)
    while stack:
        name = stack.pop()
        if name in seen or name.split(".")[0] not in VERSIONED_PACKAGES:
            continue
        path = _module_file(name)
        if path is None:  # a name imported from a module, not a module
            continue
        seen[name] = path
        parts = name.split(".")
        stack += [".".join(parts[:i]) for i in range(1, len(parts))]
        stack += _imported(name, path)
    return tuple(sorted({p.relative_to(PACKAGE_ROOT).as_posix() for p in seen.values()}))


@cache
def _function_source(fn: Callable[..., Any]) -> str:
    """The source of ``fn`` (a Prefect task's function, or a plain one) as its module file holds it. Read
    from the file, not with ``inspect``: a function shipped to a Dask worker by value has no source."""
    fn = getattr(fn, "fn", fn)
    path = _module_file(fn.__module__)
    if path is None:
        raise ValueError(f"{fn.__module__}.{fn.__qualname__} is not in a project module: it cannot be versioned")
    text = _source(path).decode()
    for node in ast.parse(text).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == fn.__qualname__:
            return ast.get_source_segment(text, node) or ""
    raise ValueError(f"{fn.__module__}.{fn.__qualname__}: no top-level function of that name in {path}")


@cache
def _closure_digest(roots: tuple[str, ...]) -> str:
    h = xxhash.xxh3_64()
    loads_models = False
    for rel in module_closure(roots):
        source = _source(PACKAGE_ROOT / rel)
        h.update(rel.encode() + b"\0")
        h.update(source)
        loads_models |= rel != "pipeline/__init__.py" and b"MODELS_DIR" in source
    if loads_models:  # a shipped model (language ID, quality, perplexity) is code the stage runs
        for path in sorted(p for p in pipeline.MODELS_DIR.iterdir() if p.is_file()):
            h.update(path.name.encode() + b"\0")
            h.update(file_fingerprint(path).encode())
    return h.hexdigest()


# Task threads compute versions concurrently, and CPython 3.11's ast.parse is not thread-safe ("AST
# constructor recursion depth mismatch"): one thread at a time parses; the results are memoised.
_CODE_LOCK = threading.Lock()


def unit_code(fn: Callable[..., Any] | None, *roots: str) -> str:
    """The code version of a unit run by ``fn`` (a task) calling into the modules ``roots``."""
    with _CODE_LOCK:
        text = _function_source(fn) if fn is not None else ""
        closure = _closure_digest(tuple(sorted(roots)))
    digest = xxhash.xxh3_64_hexdigest(f"{closure}\0{text}".encode())
    return f"{pipeline.__version__}/{UNIT_FORMAT}/{digest}"


def clear_code_versions() -> None:
    """Forget the memoised versions (tests that stand in an edited module call this)."""
    with _CODE_LOCK:
        for cached in (module_closure, _function_source, _closure_digest):
            cached.cache_clear()


def make_key(code: str, *parts: Any) -> str:
    """The key of a unit: its code version (``unit_code``) and its inputs' keys and configs."""

    def default(obj: Any) -> Any:
        if isinstance(obj, BaseModel):
            return obj.model_dump(mode="json")
        if isinstance(obj, Path):
            return str(obj)
        raise TypeError(f"cannot key {type(obj).__name__}")

    blob = json.dumps([code, *parts], sort_keys=True, default=default)
    return xxhash.xxh3_128_hexdigest(blob.encode())


def file_fingerprint(path: Path, chunk: int = 1 << 22) -> str:
    h = xxhash.xxh3_128()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


class WorkUnit:
    """The folder holding one unit's outputs: ``cache/<step>/<key>/`` with ``done.json`` written last."""

    def __init__(self, cache_dir: Path, step: str, key: str):
        self.dir = cache_dir / step / key
        self.step = step
        self.key = key

    @property
    def done(self) -> bool:
        return (self.dir / "done.json").is_file()

    def info(self) -> dict[str, Any]:
        return json.loads((self.dir / "done.json").read_text())

    def staging(self) -> Path:
        """A fresh private folder to write outputs into before ``commit``."""
        tmp = self.dir.parent / f".tmp-{self.key}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        return tmp

    def commit(self, staging: Path, info: dict[str, Any]) -> dict[str, Any]:
        (staging / "done.json").write_text(json.dumps(info, sort_keys=True, indent=1))
        try:
            os.rename(staging, self.dir)
        except OSError:
            # Another worker finished the same unit first (same key means same content), or a stale
            # folder without done.json survives from a crash: replace the latter.
            if self.done:
                shutil.rmtree(staging, ignore_errors=True)
            else:
                shutil.rmtree(self.dir, ignore_errors=True)
                os.rename(staging, self.dir)
        return info


def clean_staging(cache_dir: Path) -> None:
    """Remove half-written unit folders left by a killed run."""
    if not cache_dir.is_dir():
        return
    for step in cache_dir.iterdir():
        if step.is_dir():
            for tmp in step.glob(".tmp-*"):
                shutil.rmtree(tmp, ignore_errors=True)
