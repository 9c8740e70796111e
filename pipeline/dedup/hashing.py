"""Step 1 of dedup: per-shard signatures (exact hash, URL hash, MinHash-LSH band hashes) of each document.

Text handling is vectorised over the UTF-8 bytes of a whole chunk with numpy (``pipeline.text``; no
per-shingle Python):

* exact hash: xxh3_64 of the text lowercased (ASCII) with whitespace runs collapsed and trimmed;
* shingles: the same text with ASCII and Unicode punctuation dropped (``pipeline.text.normalised_bytes``),
  then ``ngram`` consecutive words (``shingle="word"``) or characters (``shingle="char"``); a document with
  fewer than ``ngram`` words (but at least ``min_words``) is one shingle. Shingle hashes are
  ``pipeline.text.shingle_hashes`` mixed down to 32 bits.

MinHash values are datasketch's ``MinHash(num_perm, seed=seed)`` (default ``affine32`` scheme) for those
32-bit shingle hashes (tests check equality with datasketch), computed blockwise in numpy; each LSH band's
``rows`` values are mixed into one 64-bit band hash.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numpy as np
import polars as pl
import xxhash
from datasketch import MinHash

from pipeline.dedup.config import DedupConfig
from pipeline.text import (
    CHUNK_BYTES,
    ascii_lower,
    collapse_whitespace,
    punctuation_mask,
    shingle_hashes,
    splitmix64,
    utf8_buffers,
    word_counts,
)

_BLOCK = 1 << 12  # shingles per numpy block: 4096 x 128 perms x 4 B = 2 MiB, stays in cache


def signatures(df: pl.DataFrame, cfg: DedupConfig | None = None) -> pl.DataFrame:
    """Per-shard signature table: id, source, length (chars), quality (f64, null when the document has
    no ``quality_column``), url_key (a 64-bit hash of the URL of web documents, else null), n_words, exact_hash (u64)
    and ``bands`` (list[u64], one hash per LSH band; null for docs under min_words or when near dedup
    is off); with ``verify``, also ``shingles`` (list[u32])."""
    cfg = cfg or DedupConfig()
    quality = (
        pl.col(cfg.quality_column).cast(pl.Float64) if cfg.quality_column in df.columns else pl.lit(None, pl.Float64)
    ).alias("quality")
    if df.height == 0:
        return _signature_chunk(df, cfg, quality)
    # bounded chunks of text keep the numpy prefix arrays small whatever the shard size
    sizes = df.select(pl.col("text").fill_null("").str.len_bytes().cum_sum()).to_series().to_numpy()
    cuts = np.unique(np.searchsorted(sizes, np.arange(CHUNK_BYTES, int(sizes[-1]) + 1, CHUNK_BYTES)) + 1)
    bounds = [0, *[int(c) for c in cuts if 0 < c < df.height], df.height]
    parts = [_signature_chunk(df[lo:hi], cfg, quality) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
    return pl.concat(parts) if len(parts) > 1 else parts[0]


def url_hashes(urls: pl.Series) -> pl.Series:
    """The 64-bit xxh3 hash of each URL (null stays null). Signatures and the published ``dedup_index``
    hold this, never the URL: a URL's query string can carry personal data, and the index is written
    before the ``pii`` stage sees the documents."""
    h64 = xxhash.xxh3_64_intdigest
    return pl.Series("url_key", [None if u is None else h64(u.encode()) for u in urls.to_list()], dtype=pl.UInt64)


def _signature_chunk(df: pl.DataFrame, cfg: DedupConfig, quality: pl.Expr) -> pl.DataFrame:
    bands, rows = cfg.band_params()
    raw, offsets = utf8_buffers(df["text"])
    low = ascii_lower(raw)
    ex_buf, ex_off = collapse_whitespace(low, offsets)  # before punctuation_mask turns Unicode spaces into spaces
    exb = ex_buf.tobytes()
    h64 = xxhash.xxh3_64_intdigest
    exact = [h64(exb[s:e]) for s, e in zip(ex_off[:-1].tolist(), ex_off[1:].tolist(), strict=True)]
    nb, noff = collapse_whitespace(low, offsets, punctuation_mask(low))
    n_words = word_counts(nb, noff)
    base = df.select(
        pl.col("id"),
        pl.col("source"),
        pl.col("text").fill_null("").str.len_chars().cast(pl.Int64).alias("length"),
        quality,
        (
            pl.when(pl.col("source") == "web").then(pl.col("url")) if "url" in df.columns else pl.lit(None, pl.String)
        ).alias("url_key"),
    ).with_columns(
        pl.Series("n_words", n_words, dtype=pl.Int64),
        pl.Series("exact_hash", exact, dtype=pl.UInt64),
    )
    base = base.with_columns(url_hashes(base["url_key"]))
    band_col = pl.Series("bands", [None] * len(base), dtype=pl.List(pl.UInt64))
    shingle_col = pl.Series("shingles", [None] * len(base), dtype=pl.List(pl.UInt32))
    eligible = np.flatnonzero(n_words >= cfg.min_words) if cfg.near else np.empty(0, np.int64)
    if len(eligible):
        # compact the eligible documents' bytes
        if len(eligible) == len(base):
            sel, sel_off = nb, noff
        else:
            byte_ok = np.repeat(n_words >= cfg.min_words, np.diff(noff))
            kept = np.flatnonzero(byte_ok)
            sel, sel_off = nb[kept], np.searchsorted(kept, noff[np.append(eligible, eligible[-1] + 1)]).astype(np.int64)
        hv, counts = shingle_hashes(sel, sel_off, cfg.shingle, cfg.ngram)
        sig = _minhash(hv, counts, cfg.num_perm, cfg.seed)
        bh = _band_hashes(sig, bands, rows)
        full = np.zeros((len(base), bands), dtype=np.uint64)
        full[eligible] = bh
        mask = np.zeros(len(base), dtype=bool)
        mask[eligible] = True
        band_col = (
            pl.DataFrame({"b": pl.Series(full).cast(pl.List(pl.UInt64)), "m": mask})
            .select(pl.when(pl.col("m")).then(pl.col("b")).alias("bands"))
            .to_series()
        )
        if cfg.verify:
            ends = np.cumsum(counts)
            sets = [None] * len(base)
            for i, d in enumerate(eligible.tolist()):
                sets[d] = np.unique(hv[ends[i] - counts[i] : ends[i]]).tolist()
            shingle_col = pl.Series("shingles", sets, dtype=pl.List(pl.UInt32))
    out = base.with_columns(band_col.alias("bands"))
    return out.with_columns(shingle_col) if cfg.verify else out


# ----------------------------------------------------------------------------------------------
# MinHash and LSH bands


def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3 32-bit finalizer (datasketch's affine32 pre-mix)."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


@lru_cache(maxsize=16)
def _permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    a, b = MinHash(num_perm=num_perm, seed=seed).permutations
    return a.astype(np.uint32), b.astype(np.uint32)


def _minhash_block(hv: np.ndarray, seg_starts: np.ndarray, a: np.ndarray, b: np.ndarray, buf: np.ndarray) -> np.ndarray:
    v = buf[:, : len(hv)]
    with np.errstate(over="ignore"):
        np.multiply(a[:, None], _fmix32(hv)[None, :], out=v)  # uint32 wrap-around = mod 2^32
        v += b[:, None]
    return np.minimum.reduceat(v, seg_starts, axis=1).T


def _minhash(shingle_hashes: np.ndarray, counts: np.ndarray, num_perm: int, seed: int, threads: int = 2) -> np.ndarray:
    """(docs, num_perm) uint32 MinHash values; doc i owns the next ``counts[i]`` (>= 1) shingle hashes.

    Shingles are cut into cache-sized blocks regardless of document bounds: each block yields one row
    per (document piece) and pieces of one document are min-combined at the end. Blocks run on
    ``threads`` threads (numpy releases the GIL)."""
    a, b = _permutations(num_perm, seed)
    n = int(counts.sum())
    doc_starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    block_starts = np.arange(0, n, _BLOCK, dtype=np.int64)
    # pieces start at every document start and every block start
    is_start = np.zeros(n + 1, dtype=bool)
    is_start[doc_starts] = True
    is_start[block_starts] = True
    piece_starts = np.flatnonzero(is_start[:-1])
    piece_doc = np.searchsorted(doc_starts, piece_starts, side="right") - 1
    piece_block = piece_starts // _BLOCK
    bounds = np.searchsorted(piece_block, np.arange(len(block_starts) + 1))

    def run(blocks: range) -> list[np.ndarray]:
        buf = np.empty((len(a), _BLOCK), dtype=np.uint32)
        out = []
        for k in blocks:
            lo = int(block_starts[k])
            segs = piece_starts[bounds[k] : bounds[k + 1]] - lo
            out.append(_minhash_block(shingle_hashes[lo : lo + _BLOCK], segs, a, b, buf))
        return out

    nb = len(block_starts)
    if threads > 1 and nb >= 2 * threads:
        step = math.ceil(nb / threads)
        ex = _pool(threads, os.getpid())
        parts = [p for chunk in ex.map(run, [range(i, min(i + step, nb)) for i in range(0, nb, step)]) for p in chunk]
    else:
        parts = run(range(nb))
    pieces = np.concatenate(parts) if parts else np.empty((0, num_perm), dtype=np.uint32)
    first_piece = np.searchsorted(piece_doc, np.arange(len(counts)))
    return np.minimum.reduceat(pieces, first_piece, axis=0) if len(pieces) else pieces


@lru_cache(maxsize=4)
def _pool(threads: int, pid: int) -> ThreadPoolExecutor:
    """A long-lived pool per thread count (and process: a forked child needs its own threads). A new
    pool per chunk starts new threads, and each leaves its malloc arena's fragments behind, so RSS
    crept up shard after shard."""
    return ThreadPoolExecutor(threads, thread_name_prefix=f"dedup-minhash-{pid}")


def _band_hashes(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(docs, bands) uint64: one 64-bit mix of each band's ``rows`` MinHash values."""
    out = np.empty((sig.shape[0], bands), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for i in range(bands):
            h = np.full(sig.shape[0], np.uint64(0x9E3779B97F4A7C15) * np.uint64(i + 1), dtype=np.uint64)
            for j in range(i * rows, (i + 1) * rows):
                h = splitmix64(h ^ sig[:, j].astype(np.uint64))
            out[:, i] = h
    return out
