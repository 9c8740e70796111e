"""Ingest configuration and the description of one input file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


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
    max_file_mb: int = Field(512, ge=1)
    """Files larger than this (on disk) are rejected without being read."""
    max_record_mb: int = Field(64, ge=1)
    """A single WARC/ARC payload or book/code/HTML file body larger than this (decoded) is rejected."""
    min_chars: int = Field(1, ge=0)
    """Documents with fewer non-whitespace-stripped characters are rejected as ``empty``."""
    jsonl_html_field: str | None = "html"
    """JSONL/parquet records without ``text``/``content`` but with this field are HTML: extract main text."""
    parquet_batch_rows: int = Field(8192, ge=1)
    """Rows per pyarrow batch when streaming parquet row groups."""
    minified_avg_line: int = Field(300, ge=1)
    """Code whose average line length is above this is flagged ``minified`` in meta."""
    binary_ctrl_ratio: float = Field(0.05, ge=0.0, le=1.0)
    """Text whose share of control characters (other than tab/newline/CR/FF) is above this is binary."""
    book_max_chars: int = Field(100_000, ge=0)
    """Books longer than this are split on paragraph boundaries into parts of at most this many
    characters, sharing a ``group_id`` (0 keeps each book whole)."""
    reject_http_errors: bool = True
    """Reject WARC responses whose HTTP status is not 2xx (error pages, redirects)."""
    shard_mb: float = Field(16, gt=0)
    """Orchestration: input files are grouped into ingest shards of about this many MB (on disk).
    ``read_file`` ignores it; the flow uses it to cut the file list (one big file forms its own shard)."""
    max_files_per_shard: int = Field(2000, ge=1)
    """Orchestration: at most this many input files per ingest shard (many small code files)."""


@dataclass(frozen=True)
class InputFile:
    """One file found by :func:`pipeline.ingest.discover`.

    ``display`` is the input root's name plus the path below it ("/" separators): ids hash it, so
    they do not depend on where the data lives. ``source`` is the forced source (``--source``) or None.
    """

    path: Path
    display: str
    fmt: str
    source: str | None
    size: int
