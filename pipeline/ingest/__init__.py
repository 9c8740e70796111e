"""Ingest: turn input files (WARC/ARC/WET, HTML, JSONL, parquet, books, code) into documents.

Usage::

    files, warnings = discover([parse_input_arg(a) for a in args])
    for f in files:
        docs, rejected = read_file(f, IngestConfig())

``docs`` follows ``DOC_SCHEMA`` and ``rejected`` ``REJECTED_SCHEMA`` (stage ``"ingest"``).
``read_file`` never raises for bad content: every problem becomes a rejected row. Ids are
``doc_id(display, locator)`` where the locator is the record's byte offset (WARC/ARC/WET),
the 1-based line number (JSONL), the 0-based row index (parquet) or None (one-document files).
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from ._common import file_reject
from .books import read_book, strip_gutenberg
from .code import read_code
from .config import IngestConfig, InputFile
from .discover import detect_format, discover, parse_input_arg
from .records import read_jsonl, read_parquet
from .web import read_html, read_warc

__all__ = [
    "IngestConfig",
    "InputFile",
    "detect_format",
    "discover",
    "parse_input_arg",
    "read_file",
    "strip_gutenberg",
]

Reader = Callable[[InputFile, IngestConfig], tuple[pl.DataFrame, pl.DataFrame]]

_READERS: dict[str, Reader] = {
    "warc": read_warc,
    "arc": read_warc,
    "wet": read_warc,
    "html": read_html,
    "jsonl": read_jsonl,
    "parquet": read_parquet,
    "book": read_book,
    "code": read_code,
}
# Source used for file-level rejects before a reader has decided anything.
_DEFAULT_SOURCE = {"warc": "web", "arc": "web", "wet": "web", "wat": "web", "html": "web",
                   "book": "book", "code": "code"}  # fmt: skip


def read_file(f: InputFile, cfg: IngestConfig | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Read one input file into (documents, rejected rows); never raises for bad content."""
    cfg = cfg or IngestConfig()
    default_source = _DEFAULT_SOURCE.get(f.fmt, "other")

    def reject(reason: str) -> tuple[pl.DataFrame, pl.DataFrame]:
        return file_reject(f, cfg, reason, default_source)

    if f.fmt == "wat":
        return reject("unsupported: WAT metadata")
    reader = _READERS.get(f.fmt)
    if reader is None:
        return reject(f"unsupported file type: {_suffix(f.path.name)}")
    try:
        size = f.path.stat().st_size
    except OSError as e:
        return reject(f"unreadable: {type(e).__name__}: {e.strerror or e}")
    if size > cfg.max_file_mb << 20:
        return reject(f"file too large: {size / (1 << 20):.0f} MB > max_file_mb={cfg.max_file_mb}")
    if size == 0:
        return reject("empty file")
    try:
        return reader(f, cfg)
    except OSError as e:  # permission denied, vanished file, I/O error while reading
        return reject(f"unreadable: {type(e).__name__}: {e.strerror or e}")
    except Exception as e:  # noqa: BLE001 - safety net: one odd file must not stop a corpus run
        return reject(f"reader error: {type(e).__name__}: {' '.join(str(e).split())[:200]}")


def _suffix(name: str) -> str:
    """ ".ext" of a file name, keeping the inner one for compressed files (".csv.gz")."""
    parts = name.lower().lstrip(".").split(".")
    if len(parts) < 2:
        return "(none)"
    if parts[-1] in ("gz", "zst", "bz2", "xz") and len(parts) > 2:
        return f".{parts[-2]}.{parts[-1]}"
    return f".{parts[-1]}"
