"""Ingest configuration and the description of one input file."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from pipeline.bounds import MAX_DOC_CHARS, MAX_MB, Float, Int, ZeroToOne


class IngestConfig(BaseModel):
    """Settings of the ingest stage (every field has a default, so ``IngestConfig()`` just works)."""

    model_config = ConfigDict(extra="forbid")

    extractor: Literal[
        "trafilatura", "trafilatura_recall", "trafilatura_precision", "trafilatura_fast", "trafilatura_defaults",
        "resiliparse",
    ] = "trafilatura_recall"  # fmt: skip
    """HTML main-text extractor, chosen by ``benchmarks/extraction.py`` on 629 pages with ground truth:
    trafilatura with ``favor_recall`` (comments and tables dropped) has the best token F1 (0.858, vs
    0.847 for trafilatura's own defaults); ``resiliparse`` is ~10x faster at F1 0.841, with more
    boilerplate left in (snippet precision 0.76 vs 0.90)."""
    include_tables: bool = False
    """Keep table text in extracted HTML; off because layout tables are mostly navigation noise."""
    max_file_mb: Int = Field(512, ge=1, le=MAX_MB)
    """Files larger than this (on disk) are rejected without being read (at most 1 TB)."""
    max_record_mb: Int = Field(64, ge=1, le=1024)
    """A single record (JSONL line, parquet row, WARC/ARC payload, book/code/HTML body) larger than this
    once decompressed is rejected with its size; readers stop reading it at this many bytes, so memory
    stays bounded whatever the input. At most 1024: a record is held whole, several times over, once
    decoded. Not tied to ``max_file_mb``: a small compressed file can hold a record larger than itself."""
    max_file_text_mb: Int = Field(2048, ge=1, le=MAX_MB)
    """Total text of the documents of one file, in MB (counted in characters). ``read_file`` returns a
    file's documents at once, so this bounds its memory: from the record that would pass it on, each
    document of that file becomes a ``file text over max_file_text_mb`` reject (a 1 KB parquet file or
    a gzip bomb can otherwise hold thousands of records just under ``max_record_mb``)."""
    min_chars: Int = Field(1, ge=0, le=MAX_DOC_CHARS)
    """Documents with fewer non-whitespace-stripped characters are rejected as ``empty``."""
    jsonl_html_field: str | None = Field("html", min_length=1)
    """JSONL/parquet records without ``text``/``content`` but with this field are HTML: extract main text."""
    parquet_batch_rows: Int = Field(8192, ge=1, le=1_000_000)
    """Rows per pyarrow batch when streaming parquet row groups (fewer in row groups of very large rows)."""
    minified_avg_line: Int = Field(300, ge=1, le=MAX_DOC_CHARS)
    """Code whose average line length is above this is flagged ``minified`` in meta."""
    binary_ctrl_ratio: ZeroToOne = 0.05
    """Text whose share of control characters (other than tab/newline/CR/FF) is above this is binary."""
    book_max_chars: Int = Field(100_000, ge=0, le=MAX_DOC_CHARS)
    """Books longer than this are split on paragraph boundaries into parts of at most this many
    characters, sharing a ``group_id`` (0 keeps each book whole)."""
    reject_http_errors: bool = True
    """Reject WARC responses whose HTTP status is not 2xx (error pages, redirects)."""
    shard_mb: Float = Field(16.0, ge=0.001, le=MAX_MB)
    """Orchestration: input files are grouped into ingest shards of about this many MB (on disk).
    ``read_file`` ignores it; the flow uses it to cut the file list (one big file forms its own shard)."""
    max_files_per_shard: Int = Field(2000, ge=1, le=10_000_000)
    """Orchestration: at most this many input files per ingest shard (many small code files)."""


# ``InputFile.fmt`` of entries discovery found but does not read: ``read_file`` turns each into one
# rejected row whose reason is ``InputFile.reason`` (``duplicate``: another path to a file read once,
# under that other path).
PROBLEM_FMTS = ("unreadable", "special", "link", "duplicate")


def safe_text(path: str | os.PathLike[str]) -> str:
    """A path as valid, readable UTF-8, distinct for distinct paths.

    File names are bytes: one that is not UTF-8 comes back from the OS with surrogate escapes, which
    polars and JSON refuse. Such a name shows its odd bytes as ``\\xNN``; a backslash in it shows as
    ``\\\\`` so that no escaped name can equal a plain one (a plain name never contains a backslash
    here: any name holding one is escaped).
    """
    raw = os.fsencode(path)
    if b"\\" not in raw:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return raw.replace(b"\\", b"\\\\").decode("utf-8", "backslashreplace")


@dataclass(frozen=True)
class InputFile:
    """One file found by :func:`pipeline.ingest.discover`.

    ``display`` is the input root's name plus the path below it ("/" separators), always valid UTF-8
    (see :func:`safe_text`): ids hash it, so they do not depend on where the data lives. ``path`` is
    the real path, possibly holding surrogate escapes. ``source`` is the forced source (``--source``)
    or None. ``reason`` says why an entry of a ``PROBLEM_FMTS`` format cannot be read. ``part`` is set
    when a big file is cut into several units of work (``pipeline.ingest.grouping``): (start, end,
    lines before start, file size, file mtime_ns) of a JSONL file, a byte range whose ends are line
    starts, or (first, end, rows before first, ...) of a Parquet file's row groups; the file's size and
    modification time when it was cut tell a reader that it changed since. ``size`` is then the part's
    and ``fingerprint`` the content hash of what the part reads (set by whoever has read it already).
    """

    path: Path
    display: str
    fmt: str
    source: str | None
    size: int
    reason: str | None = None
    part: tuple[int, int, int, int, int] | None = None
    fingerprint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict that :meth:`from_dict` turns back into an equal InputFile.

        A path that is not valid UTF-8 goes as ``path_hex`` (its bytes in hex); ``path`` then holds a
        readable but lossy form, for people only.
        """
        d = asdict(self)
        d["path"] = str(self.path)
        try:
            d["path"].encode("utf-8")
        except UnicodeEncodeError:
            d["path"] = safe_text(self.path)
            d["path_hex"] = os.fsencode(self.path).hex()
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> InputFile:
        """Inverse of :meth:`to_dict`."""
        fields = {k: v for k, v in d.items() if k != "path_hex"}
        hexed = d.get("path_hex")
        fields["path"] = Path(os.fsdecode(bytes.fromhex(hexed))) if hexed else Path(d["path"])
        if fields.get("part") is not None:
            fields["part"] = tuple(int(x) for x in fields["part"])
        return cls(**fields)
