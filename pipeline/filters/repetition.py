"""Gopher n-gram repetition statistics (``rep_top{n}gram_frac``, ``rep_dup{n}gram_frac``) in numpy.

One exploded word table for the whole batch (row, position, word hash, word length); n-grams are
never built as strings. The definitions object (``FilterConfig.reading``) says what a word is, how the
most frequent n-gram is scored and which characters a duplicated n-gram covers; this module finds the
n-grams that repeat and sums their characters per document.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from pipeline.filters.exprs import ROW, safe_div

if TYPE_CHECKING:
    from pipeline.filters.definitions import Definitions


@dataclass(frozen=True)
class WordTable:
    """The batch's words in document order, as numpy arrays (one entry per word)."""

    ri: np.ndarray  # row index of the word's document
    pos: np.ndarray  # the document as an index into the output frame
    cs: np.ndarray  # running sum of word lengths (chars of words 0..i)
    wl: np.ndarray  # word length in characters
    ndocs: int


def ngram_stats(df: pl.DataFrame, top_ns: list[int], dup_ns: list[int], reading: Definitions) -> pl.DataFrame:
    """Gopher n-gram repetition stats via one exploded word table (row, position) and group_by.

    N-gram identity is a hash chained over word hashes: h_n(i) = hash(h_{n-1}(i), h_1(i+n-1)), valid
    where word i+n-1 belongs to the same document. Character counts come from a running sum of word
    lengths, so no n-gram string is ever built.
    """
    out = df.select(ROW, pl.col("text").fill_null("").str.len_chars().alias("__len"))
    max_n = max([*top_ns, *dup_ns], default=0)
    if max_n == 0:  # every n-gram threshold is off: no statistic, and no helper column leaks out
        return out.select(ROW)
    w = (
        df.select(ROW, reading.ngram_words().alias("w"))
        .explode("w")
        .filter(pl.col("w").is_not_null())
        .with_row_index("__g")
        .select(
            pl.col(ROW),
            pl.col("__g").cast(pl.Int64),
            pl.col("w").hash(seed=1).alias("wh"),
            pl.col("w").str.len_chars().cast(pl.Int64).alias("wl"),
        )
        .with_columns(pl.col("wl").cum_sum().alias("__cs"))
    )
    wh = w["wh"].to_numpy().astype(np.uint64)
    ri = w[ROW].to_numpy().astype(np.int64)
    size = len(wh)
    salt = ri.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    docs = out[ROW].to_numpy()
    words = WordTable(ri, np.searchsorted(docs, ri), w["__cs"].to_numpy(), w["wl"].to_numpy(), len(docs))
    cols: dict[str, np.ndarray] = {"__total": np.bincount(words.pos, weights=words.wl, minlength=len(docs))}
    # Polynomial rolling hash in numpy (wrapping uint64): h_n(i) = h_{n-1}(i) * P + wh(i+n-1), salted
    # with the row index so that equal values mean "same n-gram in the same document". An n-gram can
    # only repeat where its (n-1)-word prefix repeats, so each n only hashes and groups the positions
    # whose shorter n-gram occurred twice or more (``cand``), a set that shrinks fast with n.
    cand, hc = np.arange(size), wh
    for n in range(2, max_n + 1):
        end = cand + n - 1
        inside = end < size
        inside[inside] = ri[end[inside]] == ri[cand[inside]]  # the n-gram ends in its document
        with np.errstate(over="ignore"):
            cand, hc = cand[inside], hc[inside] * np.uint64(1099511628211) + wh[end[inside]]
        if n not in top_ns and n not in dup_ns:
            continue
        v_idx, hn = cand, hc ^ salt[cand]
        if n in top_ns:
            gram_chars = reading.ngram_chars(v_idx, n, words)
            cnt, tie = reading.top_ngram_ranks(hn, v_idx, gram_chars)
            rep = cnt > 1  # n-grams occurring twice or more in their document
        else:  # only which n-grams repeat is needed
            rep = pl.Series(hn, dtype=pl.UInt64).is_duplicated().to_numpy()
        cand, hc = cand[rep], hc[rep]
        if n in dup_ns:
            cols[f"__dup{n}"] = reading.dup_ngram_chars(v_idx[rep], hn[rep], n, words)
        if n in top_ns:
            key = (cnt.astype(np.int64) << 40) | tie.astype(np.int64)
            best = (
                pl.DataFrame({"d": words.pos[v_idx][rep], "key": key[rep], "val": (cnt * gram_chars)[rep]})
                .group_by("d")
                .agg(pl.col("val").get(pl.col("key").arg_max()))
            )
            top = reading.top_ngram_without_repeat(n, words)
            top[best["d"].to_numpy()] = best["val"].to_numpy()
            cols[f"__top{n}"] = top
    out = out.with_columns([pl.Series(k, v, dtype=pl.Float64) for k, v in cols.items()])
    total = reading.ngram_denominator(pl.col("__len"), pl.col("__total"))
    return out.select(
        ROW,
        *[safe_div(pl.col(f"__top{n}").fill_null(0), total).alias(f"rep_top{n}gram_frac") for n in top_ns],
        *[safe_div(pl.col(f"__dup{n}").fill_null(0), total).alias(f"rep_dup{n}gram_frac") for n in dup_ns],
    )


def group_counts(h: np.ndarray, first: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Per element: how often its value occurs, and (``first``) the index of its first occurrence,
    else zeros. polars' hash grouping (``over``), in order: a numpy argsort of the hashes cost ~3x more."""
    if len(h) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    d = pl.DataFrame({"h": pl.Series(h, dtype=pl.UInt64)}).with_row_index("i")
    d = d.select(pl.len().over("h").alias("c"), *([pl.col("i").min().over("h").alias("f")] if first else []))
    cnt = d["c"].to_numpy().astype(np.int64)
    return cnt, (d["f"].to_numpy().astype(np.int64) if first else np.zeros(len(h), dtype=np.int64))


def covered_words(starts: np.ndarray, n: int, ri: np.ndarray) -> np.ndarray:
    """Mask of the words covered by an n-gram starting at one of ``starts`` (ascending) in the same
    document: word g is covered if such an n-gram starts in (g - n, g]."""
    size = len(ri)
    if not len(starts):
        return np.zeros(size, dtype=bool)
    g = np.arange(size)
    last = np.searchsorted(starts, g, side="right") - 1
    st = starts[np.maximum(last, 0)]
    return (last >= 0) & (g - st < n) & (ri[st] == ri)
