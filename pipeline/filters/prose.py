"""Gopher quality statistics and line/paragraph repetition (Rae et al. 2021, appendix A), per document.

Word count and mean length, symbol ratio, bullet and ellipsis lines, alphabetic words, stop words,
and the duplicate line / paragraph fractions, all as list expressions over the batch. What a word,
a line and a paragraph are comes from the definitions object (``pipeline.filters.definitions``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from pipeline.filters.exprs import ROW, safe_div

if TYPE_CHECKING:
    from pipeline.filters.config import FilterConfig


def _dup_fracs(parts: pl.Expr, prefix: str, den: pl.Expr | None = None) -> list[pl.Expr]:
    """Duplicate-element fraction and duplicate-char fraction of a list-of-strings expression
    (chars over the parts' own chars, or over ``den``)."""
    n = parts.list.len()
    lens = parts.list.eval(pl.element().str.len_chars())
    ulens = parts.list.unique().list.eval(pl.element().str.len_chars())
    return [
        safe_div(n - parts.list.n_unique(), n).alias(f"{prefix}_frac"),
        safe_div(lens.list.sum() - ulens.list.sum(), lens.list.sum() if den is None else den).alias(
            f"{prefix}_char_frac"
        ),
    ]


def prose_stats(df: pl.DataFrame, cfg: FilterConfig) -> pl.DataFrame:
    """Per-document Gopher quality + line/paragraph repetition stats (list expressions only).

    ``df`` holds the prose rows with the row index and the definitions' shared columns (``tokenise``).
    """
    reading = cfg.reading
    text = pl.col("text").fill_null("")
    words = pl.col("__words")
    lines = pl.col("__lines")
    t = pl.col("__text")
    bullets = "".join("\\" + c if c in r"\-^[]" else c for c in cfg.bullet_chars)
    return (
        df.select(ROW, text.alias("__text"), *reading.shared_columns)
        .with_columns(reading.prose_parts(t))
        .with_columns(
            words.list.filter(pl.element().str.contains(reading.word_char)).alias("__nsw"),
            words.list.len().alias("__nwords"),
        )
        .select(
            ROW,
            pl.col("__nsw").list.len().cast(pl.Int64).alias("gopher_word_count"),
            pl.col("__nsw")
            .list.eval(pl.element().str.len_chars())
            .list.mean()
            .fill_null(0.0)
            .alias("gopher_mean_word_length"),
            safe_div(
                pl.max_horizontal(
                    t.str.count_matches("#", literal=True),
                    t.str.count_matches("...", literal=True) + t.str.count_matches("…", literal=True),
                ),
                pl.col("__nwords"),
            ).alias("gopher_symbol_ratio"),
            safe_div(lines.list.eval(pl.element().str.contains(f"^[{bullets}]")).list.sum(), lines.list.len()).alias(
                "gopher_bullet_lines_frac"
            ),
            safe_div(
                lines.list.eval(pl.element().str.ends_with("...") | pl.element().str.ends_with("…")).list.sum(),
                lines.list.len(),
            ).alias("gopher_ellipsis_lines_frac"),
            safe_div(
                words.list.eval(pl.element().str.contains(reading.alpha_char)).list.sum(), pl.col("__nwords")
            ).alias("gopher_alpha_words_frac"),
            reading.stop_word_count(words, cfg.stop_words).cast(pl.Int64).alias("gopher_stop_words"),
            *_dup_fracs(pl.col(reading.rep_lines), "rep_dup_line", reading.rep_char_denominator(t)),
            *_dup_fracs(pl.col("__paras"), "rep_dup_para", reading.rep_char_denominator(t)),
        )
    )
