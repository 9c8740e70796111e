"""Line rules of C4, RefinedWeb and FineWeb: the two line-removal passes and FineWeb's line statistics.

C4 (Raffel et al. 2020, section 2.2, and the TFDS ``c4_utils`` reference code) and RefinedWeb (Penedo
et al. 2023, appendix G.2) rewrite the text: each returns the kept lines as ``__new`` beside its
statistics, and the next family reads the rewritten text. FineWeb (Penedo et al. 2024, section 3.4)
judges the text it is given. Each works on a frame of the row index and ``__text``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from pipeline.filters.exprs import ROW, safe_div

if TYPE_CHECKING:
    from pipeline.filters.config import FilterConfig

# C4 reference code (TFDS c4_utils): terminal punctuation a kept line must end with; policy notices.
C4_END_PUNCT = (".", "?", "!", '"', "'")
C4_POLICY = ["terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies"]
_C4_CITATION = r"\[\d*\]|\[edit\]|\[citation needed\]"
# RefinedWeb: counters and short boilerplate lines (examples from the paper's appendix G.2).
_RW_COUNTER = r"(?i)^[\d.,]+[kKmM]?\s+(likes?|shares?|comments?|retweets?|repl(y|ies)|views?|followers?|votes?)$"
_RW_BOILER = (
    r"(?i)\b(sign[ -]?in|log[ -]?in|sign[ -]?up|read more|click here|share this|items? in (your )?cart"
    r"|all rights reserved|subscribe|newsletter|cookie)\b"
)


def c4_lines(df: pl.DataFrame, cfg: FilterConfig) -> pl.DataFrame:
    """C4 line removal and page rules, in the order of the C4 reference code (TFDS ``c4_utils``).

    Returns ``ROW``, the rewritten ``__text`` and the ``c4_*`` statistics. The lorem-ipsum and
    curly-bracket page rules only look at lines that survived the punctuation and length checks,
    as in the reference code. Sentences are counted on kept lines: runs of ``.!?`` followed by
    space or line end (at least one per kept line, which always ends in terminal punctuation).
    Per-line tests are materialised as columns once, then combined: one nested expression would
    re-evaluate every shared test (eager ``with_columns`` has no common-subexpression elimination).
    """
    raw = pl.col("__text").str.split("\n")
    line = pl.col("__l")
    lines = (
        df.select(ROW, raw.alias("__l"))
        .explode("__l")
        .with_columns(line.fill_null("").str.strip_chars())
        .with_columns((line.str.replace_all(_C4_CITATION, "") if cfg.c4_remove_citations else line).alias("__cut"))
        .with_columns(pl.col("__cut").str.to_lowercase().alias("__low"))
    )
    cut, low = pl.col("__cut"), pl.col("__low")
    tests: list[pl.Expr] = []  # the line-level checks before the keyword rules
    if cfg.c4_max_word_length is not None:
        tests.append(~line.str.contains(rf"\S{{{cfg.c4_max_word_length + 1}}}"))
    if cfg.c4_require_terminal_punct:
        tests.append(pl.any_horizontal([cut.str.ends_with(p) for p in C4_END_PUNCT]) & ~cut.str.ends_with("..."))
    n = cfg.c4_min_words_per_line
    if n is not None and n > 0:  # ">= n whitespace-separated words", without counting them all
        tests.append(line.str.contains(rf"(?:\S+\s+){{{n - 1}}}\S"))
    lines = lines.with_columns(
        (pl.all_horizontal(tests) if tests else pl.lit(True)).alias("__ok0"),
        low.str.contains("lorem ipsum", literal=True).alias("__has_lorem"),
        (low.str.contains("javascript", literal=True) if cfg.c4_drop_javascript_lines else pl.lit(False)).alias(
            "__has_js"
        ),
        cut.str.contains("{", literal=True).alias("__has_curly"),
        (low.str.contains_any(C4_POLICY) if cfg.c4_drop_policy_lines else pl.lit(False)).alias("__has_policy"),
        pl.max_horizontal(cut.str.count_matches(r"[.!?]+['\")\]]*(\s|$)"), pl.lit(1)).alias("__sent"),
    )
    ok0 = pl.col("__ok0")
    ok1 = ok0 & ~pl.col("__has_js")
    per_doc = (
        lines.with_columns(
            (ok1 & ~pl.col("__has_policy")).alias("__ok"),
            (ok0 & pl.col("__has_lorem")).alias("__lorem"),
            (ok1 & pl.col("__has_curly")).alias("__curly"),
        )
        .group_by(ROW, maintain_order=True)
        .agg(
            pl.col("__cut").filter(pl.col("__ok")).str.join("\n").str.strip_chars().alias("__new"),
            pl.col("__sent").filter(pl.col("__ok")).sum().cast(pl.Int64).alias("c4_sentences"),
            pl.col("__lorem").any().alias("c4_lorem_ipsum"),
            pl.col("__curly").any().alias("c4_curly_bracket"),
            (1.0 - pl.col("__ok").mean()).alias("c4_removed_lines_frac"),
        )
    )
    return per_doc


def refinedweb_lines(df: pl.DataFrame, cfg: FilterConfig) -> pl.DataFrame:
    """RefinedWeb line-wise corrections: ``ROW``, rewritten ``__new`` and ``refinedweb_removed_words_frac``."""
    lines = df.select(ROW, pl.col("__text").str.split("\n").alias("__l")).explode("__l")
    line = pl.col("__l").fill_null("")
    s = line.str.strip_chars()
    nw = s.str.count_matches(r"\S+")
    letters = s.str.count_matches(r"\p{Alphabetic}")
    upper = s.str.count_matches(r"\p{Uppercase}")
    drop = (
        ((letters > 0) & (upper > cfg.refinedweb_upper_frac * letters))  # mainly upper case
        | s.str.contains(r"^[\d\s\p{P}\p{S}]+$") & s.str.contains(r"\d")  # only numerical
        | s.str.contains(_RW_COUNTER)  # a counter: "3 likes"
        | (nw == 1)  # a single word
        | ((nw <= cfg.refinedweb_short_line_words) & s.str.contains(_RW_BOILER))
    )
    return (
        lines.with_columns(drop.alias("__drop"), nw.alias("__nw"))
        .group_by(ROW, maintain_order=True)
        .agg(
            pl.col("__l").filter(~pl.col("__drop")).str.join("\n").alias("__new"),
            safe_div(pl.col("__nw").filter(pl.col("__drop")).sum(), pl.col("__nw").sum()).alias(
                "refinedweb_removed_words_frac"
            ),
        )
    )


def fineweb_stats(df: pl.DataFrame, cfg: FilterConfig) -> pl.DataFrame:
    """FineWeb custom rules over non-blank ``\\n`` lines of ``__text`` (lines are not stripped)."""
    text = pl.col("__text")
    reading = cfg.reading
    # the line list is materialised once: as a shared sub-expression it was split four times ...
    lines = pl.col("__fwl")
    n = lines.list.len()
    lens = lines.list.eval(pl.element().str.len_chars())
    ulens = lines.list.unique().list.eval(pl.element().str.len_chars())
    # ... and so are the token counts: _safe_div reads its denominator twice (test and division)
    return df.with_columns(
        text.str.split("\n").list.filter(pl.element().str.strip_chars() != "").alias("__fwl"),
        reading.fineweb_tokens(text).alias("__fw_tokens"),
    ).select(
        ROW,
        pl.when(n > 0)
        .then(lines.list.eval(pl.element().str.contains(reading.fineweb_terminal)).list.sum() / n)
        .otherwise(0.0)
        .alias("fineweb_line_punct_frac"),
        safe_div(
            lens.list.sum() - ulens.list.sum(), text.str.replace_all("\n", "", literal=True).str.len_chars()
        ).alias("fineweb_dup_line_char_frac"),
        safe_div(lines.list.eval(pl.element().str.len_chars() <= cfg.fineweb_short_line_len).list.sum(), n).alias(
            "fineweb_short_line_frac"
        ),
        safe_div(
            text.str.count_matches("\n", literal=True),
            pl.col("__fw_tokens"),
        ).alias("fineweb_newline_ratio"),
    )
