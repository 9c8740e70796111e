"""Exact substring deduplication (stage ``"substring_dedup"``), after Lee et al. 2022 (ExactSubstr).

Within a batch, every span of at least ``min_len`` bytes that occurs more than once is found with a
suffix array (libdivsufsort via ``pydivsufsort``) and its LCP array: runs of adjacent suffixes whose
common prefix is >= ``min_len`` are the copies of one repeated span. The copy that starts earliest in
the batch stays; the others are cut out of their documents. Spans never cross documents (each text
ends with a separator and matches are clipped to their document). Documents left with too little
text are rejected.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from pipeline.bounds import MAX_DOC_CHARS, Int
from pipeline.schema import StageResult, to_rejected

STAGE = "substring_dedup"


class SubstringDedupConfig(BaseModel):
    """Repeated-span removal settings."""

    model_config = ConfigDict(extra="forbid")

    min_len: Int = Field(
        200, ge=20, le=MAX_DOC_CHARS, description="bytes (Lee et al. used 50 tokens, about 200-250 bytes)"
    )
    sources: list[str] = Field(default_factory=lambda: ["web", "book", "other"])
    min_chars_left: Int = Field(1, ge=0, le=MAX_DOC_CHARS, description="documents with less text left are rejected")


def _repeated_spans(buf: np.ndarray, doc_end: np.ndarray, min_len: int) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) byte spans to cut: every copy of a repeated span except the earliest one."""
    from pydivsufsort import divsufsort, kasai

    if len(buf) < 2 * min_len:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    sa = divsufsort(buf).astype(np.int64)
    lcp = kasai(buf, sa.astype(np.int32) if len(buf) < 2**31 else sa).astype(np.int64)  # lcp[i]: sa[i] vs sa[i+1]
    left = np.concatenate([[0], lcp[:-1]])  # lcp with the previous suffix
    right = lcp  # with the next one
    m = np.maximum(left, right)
    member = m >= min_len
    group = np.cumsum(left < min_len)  # a new group starts wherever the link to the previous breaks
    idx = np.flatnonzero(member)
    if len(idx) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    g, pos, length = group[idx], sa[idx], m[idx]
    first = np.flatnonzero(np.concatenate([[True], g[1:] != g[:-1]]))
    gmin = np.minimum.reduceat(pos, first)
    owner = np.repeat(gmin, np.diff(np.append(first, len(g))))
    cut = pos != owner  # the earliest copy stays
    start = pos[cut]
    end = np.minimum(start + length[cut], doc_end[np.searchsorted(doc_end, start, side="right")])
    ok = end - start >= min_len
    return start[ok], end[ok]


def remove_repeated_substrings(df: pl.DataFrame, cfg: SubstringDedupConfig | None = None) -> StageResult:
    """Cut later copies of long repeated spans out of the documents of ``cfg.sources``."""
    cfg = cfg or SubstringDedupConfig()
    stats = {"spans_removed": 0, "bytes_removed": 0, "docs_changed": 0}
    scope = np.flatnonzero(df["source"].is_in(cfg.sources).to_numpy()) if df.height else np.empty(0, np.int64)
    if len(scope) == 0:
        return StageResult(kept=df, stats=stats)
    texts = [t.encode() for t in df["text"].fill_null("").gather(scope).to_list()]
    # a 0xFF byte never occurs in UTF-8, so a match cannot run across two documents
    blob = b"\xff".join(texts) + b"\xff"
    buf = np.frombuffer(blob, dtype=np.uint8).copy()
    lens = np.array([len(t) for t in texts], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lens + 1)[:-1]])
    ends = starts + lens
    s, e = _repeated_spans(buf, ends, cfg.min_len)
    e = np.minimum(e, ends[np.searchsorted(ends, s)])  # never cut the separator
    new_texts = df["text"].to_list()
    removed = np.zeros(df.height, dtype=np.int64)
    if len(s):
        order = np.lexsort((e, s))
        s, e = s[order], e[order]
        doc = np.searchsorted(ends, s)
        for d in np.unique(doc).tolist():
            sel = doc == d
            spans = _merge(s[sel] - starts[d], e[sel] - starts[d])
            raw = texts[d]
            pieces, prev = [], 0
            for a, b in spans:
                pieces.append(raw[prev:a])
                prev = b
                stats["bytes_removed"] += b - a
            pieces.append(raw[prev:])
            stats["spans_removed"] += len(spans)
            stats["docs_changed"] += 1
            i = int(scope[d])
            removed[i] = len(spans)
            new_texts[i] = b"".join(pieces).decode("utf-8", errors="ignore")  # a cut may split a character
    out = df.with_columns(pl.Series("text", new_texts, dtype=pl.String))
    too_short = pl.Series(removed > 0) & (out["text"].str.strip_chars().str.len_chars() < cfg.min_chars_left)
    rej = out.filter(too_short).with_columns(
        pl.concat_str(
            pl.lit('{"spans_removed": '), pl.lit(pl.Series(removed).filter(too_short)).cast(pl.String), pl.lit("}")
        ).alias("detail")
    )
    return StageResult(
        kept=out.filter(~too_short), rejected=to_rejected(rej, STAGE, "repeated_spans_only"), stats=stats
    )


def _merge(start: np.ndarray, end: np.ndarray) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in zip(start.tolist(), end.tolist(), strict=True):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out
