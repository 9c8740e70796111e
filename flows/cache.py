"""Content-keyed, crash-safe storage of stage outputs.

Every unit of work (one stage on one shard, or one global step) is keyed by a hash of its
inputs' keys, its stage config and the code version. Its outputs go to a temporary folder that
is renamed into place only when complete, so a run killed at any point loses nothing finished
and a rerun skips it.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from functools import lru_cache
from pathlib import Path
from typing import Any

import xxhash
from pydantic import BaseModel

import pipeline

PACKAGE_ROOT = Path(pipeline.__file__).resolve().parent.parent
_CODE_DIRS = ("pipeline", "flows", "model")


@lru_cache(maxsize=1)
def code_version() -> str:
    """Version plus a hash of the curation, flow and model sources: any code change re-runs the work."""
    h = xxhash.xxh3_64()
    for d in _CODE_DIRS:
        for path in sorted((PACKAGE_ROOT / d).rglob("*.py")):
            if path.name == "cli.py":  # presentation only
                continue
            h.update(path.relative_to(PACKAGE_ROOT).as_posix().encode())
            h.update(path.read_bytes())
    return f"{pipeline.__version__}+{h.hexdigest()[:12]}"


def make_key(*parts: Any) -> str:
    def default(obj: Any) -> Any:
        if isinstance(obj, BaseModel):
            return obj.model_dump(mode="json")
        if isinstance(obj, Path):
            return str(obj)
        raise TypeError(f"cannot key {type(obj).__name__}")

    blob = json.dumps([code_version(), *parts], sort_keys=True, default=default)
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
