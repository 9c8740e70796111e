"""Ingest: turn input files (WARC/ARC/WET, HTML, JSONL, parquet, books, code) into documents.

Usage::

    files, warnings = discover([parse_input_arg(a) for a in args])
    for f in files:
        docs, rejected = read_file(f, IngestConfig())

``docs`` follows ``DOC_SCHEMA`` and ``rejected`` ``REJECTED_SCHEMA`` (stage ``"ingest"``).
``read_file`` never raises and never blocks: every problem (bad content, a record over
``max_record_mb``, an unreadable, special, vanished or changing file) becomes a rejected row. Ids are
``doc_id(display, locator)`` where the locator is the record's byte offset (WARC/ARC/WET),
the 1-based line number (JSONL), the 0-based row index (parquet) or None (one-document files).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable

import polars as pl

from ._common import file_kind, file_reject, os_reason
from ._html import extract_with
from .books import read_book, strip_gutenberg
from .code import read_code
from .config import PROBLEM_FMTS, IngestConfig, InputFile
from .discover import detect_format, discover, parse_input_arg
from .records import read_jsonl, read_parquet
from .web import read_html, read_warc

__all__ = [
    "IngestConfig",
    "InputFile",
    "detect_format",
    "discover",
    "extract_with",
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
    """Read one input file into (documents, rejected rows), at least one row; never raises, never blocks.

    Only a regular file is opened (a FIFO would block forever). A file that changes while it is
    read (size, modification time or inode differ before and after) gives one reject instead of
    documents from a mix of two versions.
    """
    cfg = cfg or IngestConfig()
    default_source = _DEFAULT_SOURCE.get(f.fmt, "other")

    def reject(reason: str) -> tuple[pl.DataFrame, pl.DataFrame]:
        return file_reject(f, cfg, reason, default_source)

    if f.fmt in PROBLEM_FMTS:
        return reject(f.reason or f"unreadable: {f.fmt}")
    if f.fmt == "wat":
        return reject("unsupported: WAT metadata")
    reader = _READERS.get(f.fmt)
    if reader is None:
        return reject(f"unsupported file type: {_suffix(f.display.rsplit('/', 1)[-1])}")
    try:
        before = os.stat(f.path)
    except OSError as e:  # vanished since discovery, or no permission
        return reject(f"unreadable: {os_reason(e)}")
    except ValueError as e:  # a path no OS call accepts (an embedded NUL byte)
        return reject(f"unreadable: {e}")
    if not stat.S_ISREG(before.st_mode):
        return reject(f"not a regular file: {file_kind(before.st_mode)}")
    if f.part is not None and (before.st_size, before.st_mtime_ns) != tuple(f.part[3:5]):
        # the file was cut into parts when the run listed it: a changed file would shift every range
        return reject(f"changed since the run listed it: size {f.part[3]} -> {before.st_size} bytes")
    size = before.st_size
    if size > cfg.max_file_mb << 20:
        return reject(f"file too large: {size / (1 << 20):.0f} MB > max_file_mb={cfg.max_file_mb}")
    if size == 0:
        return reject("empty file")
    try:
        result = reader(f, cfg)
    except OSError as e:  # permission denied, vanished file, I/O error while reading
        return reject(f"unreadable: {os_reason(e)}")
    except Exception as e:  # noqa: BLE001 - safety net: one odd file must not stop a corpus run
        return reject(f"reader error: {type(e).__name__}: {' '.join(str(e).split())[:200]}")
    changed = _changed(f, before)
    if changed:
        return reject(f"changed during read: {changed}")
    if result[0].is_empty() and result[1].is_empty():  # a file must never vanish from the output
        return reject("no records")
    return result


def _changed(f: InputFile, before: os.stat_result) -> str | None:
    """How the file differs from ``before`` now, or None when it looks the same."""
    try:
        after = os.stat(f.path)
    except OSError as e:
        return f"removed ({os_reason(e)})"
    if after.st_ino != before.st_ino or after.st_dev != before.st_dev:
        return "replaced by another file"
    if after.st_size != before.st_size:
        return f"size {before.st_size} -> {after.st_size} bytes"
    if after.st_mtime_ns != before.st_mtime_ns:
        return "modified (same size)"
    return None


def _suffix(name: str) -> str:
    """ ".ext" of a file name, keeping the inner one for compressed files (".csv.gz")."""
    parts = name.lower().lstrip(".").split(".")
    if len(parts) < 2:
        return "(none)"
    if parts[-1] in ("gz", "zst", "bz2", "xz") and len(parts) > 2:
        return f".{parts[-2]}.{parts[-1]}"
    return f".{parts[-1]}"
