"""Book statistics (our rules: PG-19 / Books3 publish no heuristic thresholds): mostly-capitals lines.

The book word-count bounds read ``gopher_word_count`` (``pipeline.filters.prose``); this module adds
``book_upper_lines_frac``, the share of lines with letters that are mostly upper case (indexes,
tables of contents, licence banners).
"""

from __future__ import annotations

import polars as pl

from pipeline.filters.exprs import ROW, safe_div


def book_stats(df: pl.DataFrame) -> pl.DataFrame:
    """``book_upper_lines_frac`` of the book rows of ``df`` (row index and ``__text``)."""
    lines = (
        pl.col("__text")
        .str.split("\n")
        .list.eval(pl.element().str.strip_chars())
        .list.filter(pl.element().str.contains(r"\p{Alphabetic}"))
    )
    upper = lines.list.eval(
        pl.element().str.count_matches(r"\p{Uppercase}") > 0.5 * pl.element().str.count_matches(r"\p{Alphabetic}")
    )
    return df.select(ROW, safe_div(upper.list.sum(), lines.list.len()).alias("book_upper_lines_frac"))
