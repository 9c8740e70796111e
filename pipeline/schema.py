"""Column contracts shared by every stage.

A *batch* is a polars DataFrame of documents. Ingest produces ``DOC_SCHEMA``; later stages
may add columns (``lang``, filter statistics, ...) but never drop these. Every rejected row
is normalised to ``REJECTED_SCHEMA`` so that ``rejected/*.parquet`` reads as one table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

# Sources a document can come from.
SOURCES = ("web", "book", "code", "other")

DOC_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.String(),  # stable: same input -> same id (see pipeline.ids)
    "text": pl.String(),
    "source": pl.String(),  # one of SOURCES
    "url": pl.String(),  # nullable
    "path": pl.String(),  # input file, plus "#locator" inside containers
    "meta": pl.String(),  # JSON object of reader-specific metadata (title, language, ...)
    # Unit that dedup and the train/validation split keep together: = id for a single document,
    # shared by the parts of a split book.
    "group_id": pl.String(),
    "domain": pl.String(),  # nullable: registered domain (eTLD+1) of url, see pipeline.urls
}

REJECTED_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.String(),
    "source": pl.String(),
    "url": pl.String(),
    "path": pl.String(),
    "stage": pl.String(),
    "reason": pl.String(),
    "text": pl.String(),
    "duplicate_of": pl.String(),
    "lang": pl.String(),
    "lang_score": pl.Float64(),
    # JSON object with the figures behind the decision (e.g. the statistic a filter rule tested).
    "detail": pl.String(),
}


def to_rejected(df: pl.DataFrame, stage: str, reason: str | pl.Expr | None = None) -> pl.DataFrame:
    """Project ``df`` onto ``REJECTED_SCHEMA``.

    ``reason`` is a literal, an expression, or None when ``df`` already has a ``reason`` column.
    Missing optional columns become nulls, so any stage's rejects concatenate.
    """
    if reason is not None:
        expr = reason if isinstance(reason, pl.Expr) else pl.lit(reason)
        df = df.with_columns(expr.alias("reason"))
    df = df.with_columns(pl.lit(stage).alias("stage"))
    cols = []
    for name, dtype in REJECTED_SCHEMA.items():
        if name in df.columns:
            cols.append(pl.col(name).cast(dtype))
        else:
            cols.append(pl.lit(None, dtype=dtype).alias(name))
    return df.select(cols)


def empty_rejected() -> pl.DataFrame:
    return pl.DataFrame(schema=REJECTED_SCHEMA)


@dataclass
class StageResult:
    """What a stage returns for one batch: rows kept, rows rejected, and figures for the manifest.

    ``rejected`` must already be in ``REJECTED_SCHEMA`` (use ``to_rejected``) and
    ``len(kept) + len(rejected)`` must equal the rows that went in.
    """

    kept: pl.DataFrame
    rejected: pl.DataFrame = field(default_factory=empty_rejected)
    stats: dict[str, Any] = field(default_factory=dict)
