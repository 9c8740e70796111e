"""Code statistics (StarCoder / The Stack, Li et al. 2023; Kocetkov et al. 2022) and the reader's flags.

Line lengths and the alphanumeric fraction of each code file, plus the ``minified``, ``generated``
and ``lockfile`` flags the code reader writes into ``meta`` (read by the flag rules, not kept).
"""

from __future__ import annotations

import polars as pl

from pipeline.filters.exprs import ROW, safe_div

META_FLAGS = ("minified", "generated", "lockfile")  # -> statistics code_minified, code_generated, code_lockfile


def meta_flags(columns: list[str]) -> list[pl.Expr]:
    """``code_minified``, ``code_generated``, ``code_lockfile``: the reader's flags in ``meta`` (false if absent)."""
    meta = pl.col("meta") if "meta" in columns else pl.lit(None, dtype=pl.String)
    return [(meta.str.json_path_match(f"$.{f}") == "true").fill_null(False).alias(f"code_{f}") for f in META_FLAGS]


def code_stats(df: pl.DataFrame) -> pl.DataFrame:
    """Line-length and alphanumeric statistics and the meta flags of the code rows ``df``."""
    text = pl.col("text").fill_null("")
    lines = text.str.split("\n").list.eval(pl.element().str.len_chars())
    return df.select(
        ROW,
        lines.list.max().fill_null(0).cast(pl.Int64).alias("code_max_line_len"),
        lines.list.mean().fill_null(0.0).alias("code_mean_line_len"),
        safe_div(text.str.count_matches(r"[\p{Alphabetic}\p{N}]"), text.str.len_chars()).alias("code_alnum_frac"),
        *meta_flags(df.columns),
    )
