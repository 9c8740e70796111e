"""Which statistics run on which rows, in which order: ``compute_stats`` over the statistic modules.

Prose rows (``apply_prose_to``, optionally ``prose_langs``) get the Gopher statistics on the text as it
came in; then C4 and RefinedWeb rewrite it in turn and FineWeb and the book statistics judge the
result (as in datatrove, where FineWeb runs after C4). Code rows (``apply_code_to``) get the code
statistics. Only the families in ``FilterConfig.families`` are computed; the other statistics are
null columns, so every batch has every column of ``STAT_COLUMNS``.
"""

from __future__ import annotations

import polars as pl

from pipeline.filters.book import book_stats
from pipeline.filters.code import code_stats
from pipeline.filters.config import FilterConfig
from pipeline.filters.exprs import ROW
from pipeline.filters.lines import c4_lines, fineweb_stats, refinedweb_lines
from pipeline.filters.prose import prose_stats
from pipeline.filters.repetition import ngram_stats
from pipeline.filters.rules import DUP_NS, HIDDEN_STATS, STATISTICS, TOP_NS, active_rules

# Families whose rules read the Gopher prose statistics (the book word-count bounds read gopher_word_count).
_PROSE_FAMILIES = {"gopher_quality", "gopher_repetition", "book"}


def compute(df: pl.DataFrame, cfg: FilterConfig) -> pl.DataFrame:
    """compute_stats plus the temporary row index, code meta flags and ``__orig_text`` (the text
    before line removal, for rejected rows)."""
    df = df.with_row_index(ROW)
    fams = set(cfg.families)
    prose_mask = pl.col("source").is_in(cfg.apply_prose_to)
    if cfg.prose_langs is not None and "lang" in df.columns:
        prose_mask = prose_mask & (pl.col("lang").is_null() | pl.col("lang").is_in(cfg.prose_langs))
    prose = df.filter(prose_mask)

    frames: list[pl.DataFrame] = []
    # Gopher rules (and the book word count) judge the text as it came in, as the papers' pipelines do.
    if fams & _PROSE_FAMILIES:
        tokens = cfg.reading.tokenise(prose)  # e.g. datatrove's words, read by both Gopher steps
        frames.append(prose_stats(tokens, cfg))
        if "gopher_repetition" in fams:
            # Skip the expensive n-gram passes whose rules are all off.
            active = {r.stat for r in active_rules(cfg)}
            top_ns = [n for n in TOP_NS if f"rep_top{n}gram_frac" in active]
            dup_ns = [n for n in DUP_NS if f"rep_dup{n}gram_frac" in active]
            frames.append(ngram_stats(tokens, top_ns, dup_ns, cfg.reading))
    # Line-rewriting families run in order (C4, then RefinedWeb) and FineWeb judges the result.
    text = prose.select(ROW, pl.col("text").fill_null("").alias("__text"))
    rewritten = False
    if "c4" in fams:
        c4 = c4_lines(text, cfg)
        frames.append(c4.drop("__new"))
        if cfg.c4_remove_lines:
            text, rewritten = c4.select(ROW, pl.col("__new").alias("__text")), True
    if "refinedweb" in fams:
        rw = refinedweb_lines(text, cfg)
        frames.append(rw.drop("__new"))
        text, rewritten = rw.select(ROW, pl.col("__new").alias("__text")), True
    if "fineweb" in fams:
        frames.append(fineweb_stats(text, cfg))
    if "book" in fams:
        books = prose.filter(pl.col("source") == "book").select(ROW)
        frames.append(book_stats(text.join(books, on=ROW, how="semi")))

    # statistics already on the rows (a batch filtered twice) are recomputed
    df = df.drop([s.name for s in STATISTICS if s.name in df.columns]).with_columns(pl.col("text").alias("__orig_text"))
    for f in frames:
        df = df.join(f, on=ROW, how="left")
    if rewritten:
        df = (
            df.join(text.rename({"__text": "__new_text"}), on=ROW, how="left")
            .with_columns(pl.coalesce("__new_text", "text").alias("text"))
            .drop("__new_text")
        )
    if "code" in fams:
        df = df.join(code_stats(df.filter(pl.col("source").is_in(cfg.apply_code_to))), on=ROW, how="left")
    missing = [pl.lit(None, dtype=s.dtype).alias(s.name) for s in STATISTICS if s.name not in df.columns]
    return df.with_columns(missing).sort(ROW)


def compute_stats(df: pl.DataFrame, cfg: FilterConfig | None = None) -> pl.DataFrame:
    """``df`` plus one column per statistic in ``STAT_COLUMNS`` (null where the rule family does not
    apply to the row's source). Row order is preserved."""
    cfg = cfg or FilterConfig()
    return compute(df, cfg).drop(ROW, "__orig_text", *HIDDEN_STATS)
