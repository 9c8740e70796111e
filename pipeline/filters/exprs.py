"""Polars helpers shared by the statistic modules: the temporary row index and a zero-safe division."""

from __future__ import annotations

import polars as pl

ROW = "__filter_row"  # temporary row index: statistics computed on a subset of rows join back on it


def safe_div(num: pl.Expr, den: pl.Expr) -> pl.Expr:
    """num / den as float, 0.0 where den is 0 (an empty document has no repetition or symbols)."""
    return pl.when(den > 0).then(num.cast(pl.Float64) / den.cast(pl.Float64)).otherwise(0.0)
