"""Global exact + MinHash-LSH near-duplicate removal (stage ``"dedup"``).

Three steps, so a flow can map steps 1 and 3 over shards and run step 2 once:

1. ``signatures(df, cfg)`` per shard: id, source, length, quality, exact hash, LSH band hashes.
2. ``find_duplicates(sigs, cfg, prior=...)`` over every shard's signatures (a DataFrame, or a LazyFrame
   scanning the Parquet files, so the band table stays on disk): exact groups (equal ``exact_hash``),
   web documents with equal (ingest-normalised) URLs and LSH candidates (equal hash in one band;
   grouped one band at a time with polars) become edges; connected components of those edges are
   the clusters; each cluster keeps the document first in ``keep_order`` (never hash or input order)
   and every other member is removed.
3. ``apply_duplicates(shard_df, removed)`` per shard: anti-join to keep, join to reject.

Text handling is vectorised over the UTF-8 bytes of a whole batch with numpy (no per-shingle Python):

* exact hash: xxh3_64 of the text lowercased (ASCII) with whitespace runs collapsed and trimmed;
* shingles: the same text with ASCII punctuation dropped, then ``ngram`` consecutive words
  (``shingle="word"``) or characters (``shingle="char"``); a document with fewer than ``ngram`` words
  (but at least ``min_words``) is one shingle. Shingle hashes are a 64-bit polynomial hash of the
  shingle bytes (computed from prefix sums, so every shingle costs O(1)), mixed down to 32 bits.

MinHash values are datasketch's ``MinHash(num_perm, seed=seed)`` (default ``affine32`` scheme) for
those 32-bit shingle hashes (tests check equality with datasketch), computed blockwise in numpy.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import polars as pl
import pyarrow as pa
import xxhash
from datasketch import MinHash
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipeline.bounds import MAX_DOC_CHARS, MAX_MB, Float, Int, Seed, ZeroToOne, field_error
from pipeline.schema import StageResult, to_rejected

STAGE = "dedup"
_KEEP_KEYS = ("quality", "length", "source", "id")
MAX_PERM = 4096  # MinHash permutations (and so bands, rows) at most
_BLOCK = 1 << 12  # shingles per numpy block: 4096 x 128 perms x 4 B = 2 MiB, stays in cache
_CHUNK_BYTES = 1 << 20  # text bytes hashed at once: bounds the numpy position/prefix arrays (~40 B a byte)
INDEX_FILE = "index.parquet"
INDEX_META = "index.json"
# Parameters that must match for an earlier run's index to be comparable with this run's signatures.
_INDEX_PARAMS = ("num_perm", "ngram", "shingle", "seed", "min_words")


class DedupConfig(BaseModel):
    """Exact and near-duplicate removal settings."""

    model_config = ConfigDict(extra="forbid")

    exact: bool = True  # remove documents whose normalised text is identical
    url: bool = True  # web documents with the same (ingest-normalised) URL are duplicates too
    near: bool = True  # remove MinHash-LSH near duplicates
    threshold: Float = Field(0.8, gt=0.0, lt=1.0, description="Jaccard similarity the LSH bands are tuned for")
    # datasketch MinHash keeps num_perm hash values per document (4 or 8 bytes each).
    num_perm: Int = Field(128, ge=2, le=MAX_PERM)
    shingle: Literal["word", "char"] = "word"  # word n-grams (default) or character n-grams
    ngram: Int = Field(5, ge=1, le=1000, description="shingle size, in words or characters")
    seed: Seed = Field(1, description="MinHash permutation seed (datasketch's default)")
    # LSH bands x rows; None = minimise fp_weight * P(false positive) + fn_weight * P(false negative)
    # around ``threshold`` (datasketch's MinHashLSH optimiser). Set both to override.
    bands: Int | None = Field(None, ge=1, le=MAX_PERM)
    rows: Int | None = Field(None, ge=1, le=MAX_PERM)
    fp_weight: ZeroToOne = 0.5
    fn_weight: ZeroToOne = 0.5
    # Check every LSH candidate pair by the true Jaccard of its shingle sets (>= threshold).
    verify: bool = False
    min_words: Int = Field(5, ge=1, le=MAX_DOC_CHARS, description="shorter documents take part in exact dedup only")
    # Keeper within a cluster: highest quality score, then longest text, then source priority, then id.
    keep_order: list[str] = Field(default_factory=lambda: list(_KEEP_KEYS))
    quality_column: str = "quality_score"  # document column read by the "quality" key (missing = null)
    source_priority: list[str] = Field(default_factory=lambda: ["book", "web", "code", "other"])
    # Earlier runs to deduplicate against: run folders (their dedup_index/) or index folders.
    # Their documents always win (they are already published) and are never removed here.
    against: list[str] = Field(default_factory=list)
    # Working memory (MiB) for clustering. The grouping keys stay in memory when they fit in half of
    # it, else they are spooled to disk in hash partitions that each fit, so memory does not grow
    # with the number of documents. ``partitions`` sets the partition count (and spools) by hand.
    memory_mb: Int = Field(64, ge=1, le=MAX_MB)
    partitions: Int | None = Field(None, ge=1, le=65_536, description="each one is a spool file per key kind")

    @field_validator("keep_order")
    @classmethod
    def _keys(cls, v: list[str]) -> list[str]:
        bad = [k for k in v if k not in _KEEP_KEYS]
        if bad or len(set(v)) != len(v):
            raise ValueError(f"keep_order takes distinct keys among {_KEEP_KEYS}, got {v}")
        if "id" not in v:
            v = [*v, "id"]  # ids are unique: the order is total, so the keeper is deterministic
        return v

    @model_validator(mode="after")
    def _bands_rows(self) -> DedupConfig:
        if (self.bands is None) != (self.rows is None):
            raise field_error("rows" if self.rows is None else "bands", "set both bands and rows, or neither", None)
        if self.bands is not None and self.rows is not None and self.bands * self.rows > self.num_perm:
            msg = f"bands * rows = {self.bands * self.rows} exceeds num_perm = {self.num_perm}"
            raise field_error("bands", msg, self.bands)
        # datasketch's MinHashLSH rule: only the ratio matters to the optimiser, so the pair sums to 1.
        if not math.isclose(self.fp_weight + self.fn_weight, 1.0):
            msg = f"fp_weight + fn_weight must be 1 (datasketch's rule), got {self.fp_weight} + {self.fn_weight}"
            raise field_error("fn_weight", msg, self.fn_weight)
        return self

    def band_params(self) -> tuple[int, int]:
        """(bands, rows) in use."""
        if self.bands is not None and self.rows is not None:
            return self.bands, self.rows
        return _optimal_bands(self.threshold, self.num_perm, self.fp_weight, self.fn_weight)

    def lsh_summary(self) -> dict[str, Any]:
        """The LSH parameters and their error probabilities, for the manifest."""
        b, r = self.band_params()
        fp, fn = _lsh_errors(self.threshold, b, r)
        return {
            "bands": b,
            "rows": r,
            "threshold": self.threshold,
            "num_perm": self.num_perm,
            "shingle": f"{self.ngram}-{self.shingle}",
            "chosen_by": "user" if self.bands is not None else "datasketch optimiser",
            "fp_weight": self.fp_weight,
            "fn_weight": self.fn_weight,
            "p_false_positive_area": round(fp, 5),
            "p_false_negative_area": round(fn, 5),
            "s_curve_midpoint": round((1 / b) ** (1 / r), 4),
        }


@lru_cache(maxsize=64)
def _optimal_bands(threshold: float, num_perm: int, fp_w: float, fn_w: float) -> tuple[int, int]:
    from datasketch.lsh import _optimal_param  # private, but it is the reference choice

    b, r = _optimal_param(threshold, num_perm, fp_w, fn_w)
    return int(b), int(r)


def _lsh_errors(threshold: float, b: int, r: int) -> tuple[float, float]:
    from datasketch.lsh import _false_negative_probability, _false_positive_probability

    return float(_false_positive_probability(threshold, b, r)), float(_false_negative_probability(threshold, b, r))


# ----------------------------------------------------------------------------------------------
# step 1: signatures

_P = 0x100000001B3  # odd multiplier of the polynomial shingle hash
_P_INV = pow(_P, -1, 1 << 64)
_WS = np.zeros(256, dtype=bool)
_WS[[9, 10, 11, 12, 13, 32]] = True
_PUNCT = np.zeros(256, dtype=bool)
_PUNCT[[*range(33, 48), *range(58, 65), *range(91, 97), *range(123, 127)]] = True
_LOWER = np.arange(256, dtype=np.uint8)
_LOWER[65:91] += 32


def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3 32-bit finalizer (datasketch's affine32 pre-mix)."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def _splitmix64(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


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
                h = _splitmix64(h ^ sig[:, j].astype(np.uint64))
            out[:, i] = h
    return out


def _utf8_buffers(texts: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """(bytes as uint8, int64 offsets of len(texts) + 1) of the texts, zero-copy from Arrow."""
    arr = texts.fill_null("").cast(pl.Binary).rechunk().to_arrow()
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    arr = arr.cast(pa.large_binary())
    _, off_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(off_buf, dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.empty(0, np.uint8)
    if len(offsets) and (offsets[0] != 0 or offsets[-1] != len(data)):  # a slice of a larger buffer
        data, offsets = data[offsets[0] : offsets[-1]], offsets - offsets[0]
    return data, offsets


def _collapse(buf: np.ndarray, offsets: np.ndarray, drop: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Drop bytes where ``drop``; turn each inner whitespace run into one space and trim the ends.

    Returns the compacted bytes and their per-document offsets."""
    if drop is not None and drop.any():
        kept = np.flatnonzero(~drop)
        buf, offsets = buf[kept], np.searchsorted(kept, offsets).astype(np.int64)
    ws = _WS[buf]
    # candidates: the last byte of a whitespace run (followed by a non-space)
    cand = np.flatnonzero(ws[:-1] & ~ws[1:]) if len(buf) > 1 else np.empty(0, np.int64)
    # first non-space of each document: its start, unless it starts with whitespace (rare)
    first_solid = offsets[:-1].copy()
    lens = np.diff(offsets)
    for d in np.flatnonzero(lens > 0)[ws[offsets[:-1][lens > 0]]].tolist():
        seg = ~ws[offsets[d] : offsets[d + 1]]
        first_solid[d] += int(np.argmax(seg)) if seg.any() else int(lens[d])
    cdoc = np.searchsorted(offsets, cand, side="right") - 1
    cand = cand[(cand + 1 < offsets[1:][cdoc]) & (cand > first_solid[cdoc])]
    keep = ~ws
    keep[cand] = True
    out = buf.copy()
    out[cand] = 32
    pos = np.flatnonzero(keep)
    return out[pos], np.searchsorted(pos, offsets).astype(np.int64)


def _shingle_hashes(
    buf: np.ndarray, offsets: np.ndarray, shingle: str, ngram: int, bits64: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """32-bit (or 64-bit) hashes of every shingle of each document in a collapsed buffer, and the
    number of shingles per document."""
    n_docs = len(offsets) - 1
    lens = np.diff(offsets)
    if shingle == "word":
        is_sp = buf == 32
        start = np.zeros(len(buf) + 1, dtype=bool)  # words start after a space or at a document start
        start[np.flatnonzero(is_sp) + 1] = True
        start[offsets[:-1][lens > 0]] = True
        unit_start = np.flatnonzero(start[:-1])
        unit_doc = np.searchsorted(offsets, unit_start, side="right") - 1
        # end (exclusive) of unit k = next space after it, or its document end
        sp = np.append(np.flatnonzero(is_sp), len(buf))
        sp_end = sp[np.searchsorted(sp, unit_start)]  # end (exclusive) = next space, or the buffer end
        unit_end = np.minimum(sp_end, offsets[1:][unit_doc])
    else:
        unit_start = np.flatnonzero((buf & 0xC0) != 0x80)  # UTF-8 character starts
        unit_doc = np.searchsorted(offsets, unit_start, side="right") - 1
        unit_end = np.concatenate([unit_start[1:], [len(buf)]])
        unit_end = np.minimum(unit_end, offsets[1:][unit_doc])
    units = np.bincount(unit_doc, minlength=n_docs)
    n = ngram
    k = np.arange(max(len(unit_start) - n + 1, 0))
    full = k[unit_doc[k] == unit_doc[k + n - 1]] if len(k) else k
    s_start, s_end, s_doc = unit_start[full], unit_end[full + n - 1], unit_doc[full]
    short = np.flatnonzero((units < n) & (units > 0))  # the whole text is the one shingle
    if len(short):
        s_start = np.concatenate([s_start, offsets[:-1][short]])
        s_end = np.concatenate([s_end, offsets[1:][short]])
        s_doc = np.concatenate([s_doc, short])
        order = np.argsort(s_doc, kind="stable")
        s_start, s_end, s_doc = s_start[order], s_end[order], s_doc[order]
    # polynomial prefix hash H[i] = sum_{j<i} (b_j + 1) P^j (mod 2^64). With N = len(buf),
    # (H[e] - H[s]) P^(N-e) = P^N sum_j (b_j + 1) P^-(e-j) depends on the shingle only, up to the
    # constant P^N, which one scalar inverse removes.
    n_all = len(buf)
    pw = _powers(n_all + 1)
    with np.errstate(over="ignore"):
        h = np.zeros(n_all + 1, dtype=np.uint64)
        np.cumsum((buf.astype(np.uint64) + np.uint64(1)) * pw[:n_all], out=h[1:])
        sh = (h[s_end] - h[s_start]) * pw[n_all - s_end] * np.uint64(pow(_P_INV, n_all, 1 << 64))
        sh = _splitmix64(sh ^ (s_end - s_start).astype(np.uint64))
    counts = np.bincount(s_doc, minlength=n_docs)
    return (sh if bits64 else (sh >> np.uint64(32)).astype(np.uint32)), counts


_POW = np.ones(1, dtype=np.uint64)


def _powers(n: int) -> np.ndarray:
    """P^0 .. P^(n-1) mod 2^64, cached and grown on demand (shared by every chunk)."""
    global _POW
    if len(_POW) < n:
        with np.errstate(over="ignore"):
            _POW = np.concatenate([[np.uint64(1)], np.cumprod(np.full(max(n, _CHUNK_BYTES + 1) - 1, _P, np.uint64))])
    return _POW


def _words(buf: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Words per document of a collapsed buffer (spaces + 1 for non-empty documents)."""
    n_docs = len(offsets) - 1
    sp_doc = np.searchsorted(offsets, np.flatnonzero(buf == 32), side="right") - 1
    return np.bincount(sp_doc, minlength=n_docs) + (np.diff(offsets) > 0)


def normalised_bytes(texts: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """The shingling normalisation (ASCII lowercase, ASCII punctuation dropped, whitespace runs -> one
    space, trimmed) of ``texts`` as one byte buffer plus per-text offsets."""
    raw, offsets = _utf8_buffers(texts)
    low = _LOWER[raw]
    return _collapse(low, offsets, _near_drop(low))


def _near_drop(low: np.ndarray) -> np.ndarray:
    """Bytes to drop for shingling: ASCII punctuation and Unicode General Punctuation (curly quotes,
    dashes, ellipsis: U+2010-U+203F); Unicode spaces (NBSP, U+2000-U+200A) become spaces in ``low``."""
    drop = _PUNCT[low]
    if len(low) >= 2:
        i = np.flatnonzero((low[:-1] == 0xC2) & (low[1:] == 0xA0))
        low[i] = 32
        low[i + 1] = 32
    if len(low) >= 3:
        i = np.flatnonzero((low[:-2] == 0xE2) & (low[1:-1] == 0x80))
        space = low[i + 2] <= 0x8A
        for k in range(3):
            low[i[space] + k] = 32
            drop[i[~space] + k] = True
    return drop


def _signature_chunk(df: pl.DataFrame, cfg: DedupConfig, quality: pl.Expr) -> pl.DataFrame:
    bands, rows = cfg.band_params()
    raw, offsets = _utf8_buffers(df["text"])
    low = _LOWER[raw]
    ex_buf, ex_off = _collapse(low, offsets, None)
    exb = ex_buf.tobytes()
    h64 = xxhash.xxh3_64_intdigest
    exact = [h64(exb[s:e]) for s, e in zip(ex_off[:-1].tolist(), ex_off[1:].tolist(), strict=True)]
    nb, noff = _collapse(low, offsets, _near_drop(low))
    n_words = _words(nb, noff)
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
        hv, counts = _shingle_hashes(sel, sel_off, cfg.shingle, cfg.ngram)
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
    cuts = np.unique(np.searchsorted(sizes, np.arange(_CHUNK_BYTES, int(sizes[-1]) + 1, _CHUNK_BYTES)) + 1)
    bounds = [0, *[int(c) for c in cuts if 0 < c < df.height], df.height]
    parts = [_signature_chunk(df[lo:hi], cfg, quality) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
    return pl.concat(parts) if len(parts) > 1 else parts[0]


# ----------------------------------------------------------------------------------------------
# step 2: clusters
#
# Out of core: one streaming pass over the signatures writes every grouping key (exact hash, URL hash,
# one hash per LSH band) with its node number ``gi`` into buckets by (key kind, hash % parts). Each
# bucket is grouped on its own (a numpy sort), so memory holds one bucket at a time; buckets stay in
# memory when the whole key table fits ``memory_mb``, else they are files in a temporary folder.
# Connected components run over the nodes that appear in an edge only, and the keeper keys are read
# (a filtered scan) for those nodes only: nothing holds a row for every document.

REMOVED_SCHEMA = {
    "id": pl.String(),
    "source": pl.String(),
    "duplicate_of": pl.String(),
    "reason": pl.String(),
    "cluster_id": pl.String(),
    "cluster_size": pl.Int64(),
    "against_earlier_run": pl.Boolean(),
}
_KEY_COLS = ["id", "source", "length", "quality", "exact_hash", "url_key"]
_SPOOL_BYTES = 12  # one spooled key: u64 hash + u32 node
_GROUP_BYTES = 40  # working bytes per key while a bucket is grouped: the key, its argsort, sorted copies
_BATCH_ROWS = 1 << 16  # documents per batch of the spool pass


def _keeper_order(cfg: DedupConfig) -> tuple[list[pl.Expr], list[bool]]:
    """Sort keys (and descending flags) that put the preferred keeper first: earlier runs, then
    ``keep_order``; ids are unique, so the order is total."""
    prio = {s: i for i, s in enumerate(cfg.source_priority)}
    exprs = {
        "quality": (pl.col("quality"), True),
        "length": (pl.col("length"), True),
        "source": (pl.col("source").replace_strict(prio, default=len(prio), return_dtype=pl.Int64), False),
        "id": (pl.col("id"), False),
    }
    return [pl.col("prior")] + [exprs[k][0] for k in cfg.keep_order], [True] + [exprs[k][1] for k in cfg.keep_order]


def _components(n: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Label of every node = smallest node of its connected component (min-label propagation with
    pointer jumping over edge arrays; vectorised, a handful of rounds in practice)."""
    labels = np.arange(n, dtype=np.int64)
    if len(u) == 0:
        return labels
    while True:
        m = np.minimum(labels[u], labels[v])
        new = labels.copy()
        np.minimum.at(new, u, m)
        np.minimum.at(new, v, m)
        while True:  # pointer jumping: follow labels to their roots
            jumped = new[new]
            if np.array_equal(jumped, new):
                break
            new = jumped
        if np.array_equal(new, labels):
            return labels
        labels = new


class _Spool:
    """Grouping keys (hash, node) bucketed by (kind, hash % parts): arrays in memory, or appended to a
    pair of files per bucket in ``folder``."""

    def __init__(self, kinds: int, parts: int, folder: Path | None) -> None:
        self.kinds, self.parts, self.folder = kinds, parts, folder
        self._mem: dict[tuple[int, int], list[tuple[np.ndarray, np.ndarray]]] = {}

    def add(self, kind: int, h: np.ndarray, g: np.ndarray) -> None:
        if self.parts == 1:
            self._put(kind, 0, h, g)
            return
        part = h % np.uint64(self.parts)
        order = np.argsort(part, kind="stable")
        cuts = np.searchsorted(part[order], np.arange(self.parts + 1, dtype=np.uint64)).tolist()
        h, g = h[order], g[order]
        for p in range(self.parts):
            if cuts[p] < cuts[p + 1]:
                self._put(kind, p, h[cuts[p] : cuts[p + 1]], g[cuts[p] : cuts[p + 1]])

    def _put(self, kind: int, part: int, h: np.ndarray, g: np.ndarray) -> None:
        if self.folder is None:
            self._mem.setdefault((kind, part), []).append((h, g))
            return
        for suffix, a in (("h", h), ("g", g)):
            with open(self.folder / f"{kind}-{part}.{suffix}", "ab") as f:
                a.tofile(f)

    def buckets(self) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """(kind, hashes, nodes) of every bucket, one at a time (in-memory buckets are released)."""
        for kind in range(self.kinds):
            for part in range(self.parts):
                if self.folder is None:
                    pieces = self._mem.pop((kind, part), [])
                    if pieces:
                        yield kind, np.concatenate([p[0] for p in pieces]), np.concatenate([p[1] for p in pieces])
                elif (self.folder / f"{kind}-{part}.h").is_file():
                    h = np.fromfile(self.folder / f"{kind}-{part}.h", dtype=np.uint64)
                    yield kind, h, np.fromfile(self.folder / f"{kind}-{part}.g", dtype=np.uint32)


def _key_exprs(cfg: DedupConfig) -> tuple[list[pl.Expr], int]:
    """The grouping keys as u64 columns k0, k1, ... (null = no key) and the index of the first LSH
    band among them (bands come last)."""
    keys: list[pl.Expr] = []
    if cfg.exact:
        keys.append(pl.col("exact_hash"))
    if cfg.url:  # a 64-bit hash of the URL, like exact_hash of the text: collisions are negligible
        keys.append(pl.when(pl.col("url_key").is_not_null()).then(pl.col("url_key").hash(seed=7)))
    first_band = len(keys)
    if cfg.near:
        bands, _ = cfg.band_params()
        keys += [pl.col("bands").list.get(i, null_on_oob=True) for i in range(bands)]
    return [k.cast(pl.UInt64).alias(f"k{i}") for i, k in enumerate(keys)], first_band


def _plan(n_docs: int, kinds: int, cfg: DedupConfig) -> tuple[int, bool]:
    """(hash partitions per key kind, spool on disk?) so that clustering stays within ``memory_mb``."""
    if cfg.partitions is not None:
        return cfg.partitions, cfg.partitions > 1
    budget = cfg.memory_mb << 20
    if n_docs * kinds * _SPOOL_BYTES <= budget // 2:  # the whole key table fits: no disk, one pass
        return 1, False
    return max(1, math.ceil(n_docs * _GROUP_BYTES / budget)), True


def _spool_keys(parts: list[_Part], keys: list[pl.Expr], spool: _Spool) -> None:
    """Stream the signatures part by part, in batches, and bucket every non-null key with its node."""
    for part in parts:
        for batch in part.lf.select("gi", *keys).collect_batches(chunk_size=_BATCH_ROWS):
            _spool_batch(batch, len(keys), spool)


def _spool_batch(batch: pl.DataFrame, kinds: int, spool: _Spool) -> None:
    gi = batch["gi"].to_numpy().astype(np.uint32)
    for kind in range(kinds):
        col = batch[f"k{kind}"]
        if col.null_count() == len(col):
            continue
        if col.null_count():
            spool.add(kind, col.drop_nulls().to_numpy(), gi[col.is_not_null().to_numpy()])
        else:
            spool.add(kind, col.to_numpy(), gi)


def _bucket_edges(h: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Star edges (node, root) joining every node of a run of equal hashes to the run's smallest node."""
    order = np.argsort(h)
    hs = h[order]
    same = hs[1:] == hs[:-1]
    if not same.any():
        return np.empty(0, np.uint32), np.empty(0, np.uint32)
    member = np.zeros(len(h), dtype=bool)  # rows in a run of two or more: usually few
    member[1:] |= same
    member[:-1] |= same
    hs, gs = hs[member], g[order[member]]
    starts = np.flatnonzero(np.append(True, hs[1:] != hs[:-1]))
    root = np.repeat(np.minimum.reduceat(gs, starts), np.diff(np.append(starts, len(hs))))
    keep = gs != root
    return gs[keep], root[keep]


def _unique_pairs(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    packed = np.unique((u.astype(np.uint64) << np.uint64(32)) | v.astype(np.uint64))
    return (packed >> np.uint64(32)).astype(np.uint32), (packed & np.uint64(0xFFFFFFFF)).astype(np.uint32)


def _edges(parts: list[_Part], cfg: DedupConfig, spool: _Spool, first_band: int) -> tuple[np.ndarray, np.ndarray]:
    """Unique edges (node, root) of every bucket; LSH edges checked by true Jaccard when ``verify``."""
    keyed: list[tuple[np.ndarray, np.ndarray]] = []  # exact and URL edges
    near: list[tuple[np.ndarray, np.ndarray]] = []
    for kind, h, g in spool.buckets():
        (near if kind >= first_band else keyed).append(_bucket_edges(h, g))
        del h, g  # release the bucket before the next one is read
    if cfg.verify and near:
        u, v = _unique_pairs(np.concatenate([e[0] for e in near]), np.concatenate([e[1] for e in near]))
        ok = _jaccard_ok(parts, pl.DataFrame({"gi": u, "root": v}), cfg.threshold)
        near = [(ok["gi"].to_numpy(), ok["root"].to_numpy())]
    edges = keyed + near
    if not edges:
        return np.empty(0, np.uint32), np.empty(0, np.uint32)
    return _unique_pairs(np.concatenate([e[0] for e in edges]), np.concatenate([e[1] for e in edges]))


def _jaccard_ok(parts: list[_Part], edges: pl.DataFrame, threshold: float) -> pl.DataFrame:
    """Keep the edges whose shingle sets have true Jaccard >= threshold."""
    if edges.is_empty():
        return edges
    need = np.unique(np.concatenate([edges["gi"].to_numpy(), edges["root"].to_numpy()]))
    sets = _fetch(parts, need, ["gi", "shingles"])
    by_gi = {g: np.asarray(s, dtype=np.uint32) for g, s in sets.iter_rows() if s is not None}
    keep = []
    for g, r in edges.select("gi", "root").iter_rows():
        if g not in by_gi or r not in by_gi:  # an earlier run's index keeps no shingles: trust LSH
            keep.append(True)
            continue
        a, b = by_gi[g], by_gi[r]
        inter = len(np.intersect1d(a, b, assume_unique=True))
        union = len(a) + len(b) - inter
        keep.append(union > 0 and inter / union >= threshold)
    return edges.filter(pl.Series(keep, dtype=pl.Boolean))


def _clustered(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(nodes in any edge, sorted; label of each = its component's smallest node), over those nodes only."""
    nodes, inv = np.unique(np.concatenate([u, v]), return_inverse=True)
    labels = _components(len(nodes), inv[: len(u)].astype(np.int64), inv[len(u) :].astype(np.int64))
    return nodes, nodes[labels]


def load_index(paths: list[str] | list[Path], cfg: DedupConfig) -> pl.LazyFrame | None:
    """Scan the persisted indexes of earlier runs (a run folder's ``dedup_index/`` or an index folder)."""
    files = []
    for p in paths:
        d = Path(p)
        if (d / "dedup_index" / INDEX_FILE).is_file():
            d = d / "dedup_index"
        if not (d / INDEX_FILE).is_file():
            raise FileNotFoundError(f"dedup: no {INDEX_FILE} under {p}")
        meta = json.loads((d / INDEX_META).read_text())
        mine = index_params(cfg)
        if meta.get("params") != mine:
            raise ValueError(f"dedup: index {d} was built with {meta.get('params')}, this run uses {mine}")
        files.append(d / INDEX_FILE)
    if not files:
        return None
    return pl.concat([pl.scan_parquet(f) for f in files], how="vertical")


def index_params(cfg: DedupConfig) -> dict[str, Any]:
    b, r = cfg.band_params()
    return {**{k: getattr(cfg, k) for k in _INDEX_PARAMS}, "bands": b, "rows": r}


def url_hashes(urls: pl.Series) -> pl.Series:
    """The 64-bit xxh3 hash of each URL (null stays null). Signatures and the published ``dedup_index``
    hold this, never the URL: a URL's query string can carry personal data, and the index is written
    before the ``pii`` stage sees the documents."""
    h64 = xxhash.xxh3_64_intdigest
    return pl.Series("url_key", [None if u is None else h64(u.encode()) for u in urls.to_list()], dtype=pl.UInt64)


class _Part(NamedTuple):
    """One input table, its rows numbered ``gi`` from ``base``: an earlier run's index, a signature
    file, or the caller's (Data|Lazy)Frame."""

    lf: pl.LazyFrame
    base: int
    rows: int


def _parts(
    sigs: pl.DataFrame | pl.LazyFrame | Sequence[str | Path],
    cfg: DedupConfig,
    prior: pl.DataFrame | pl.LazyFrame | None,
) -> list[_Part]:
    """Earlier runs' index rows then this run's signatures (``prior`` flags which), numbered ``gi``.
    Signature files are parts of their own, so each pass reads one file at a time."""
    cols = [*_KEY_COLS, "bands", *(["shingles"] if cfg.verify else [])]
    frames: list[pl.LazyFrame] = []
    if prior is not None:
        p = prior.lazy()
        names = p.collect_schema().names()
        if cfg.verify and "shingles" not in names:
            p = p.with_columns(pl.lit(None, dtype=pl.List(pl.UInt32)).alias("shingles"))
        if "url_key" not in names:
            p = p.with_columns(pl.lit(None, dtype=pl.UInt64).alias("url_key"))
        elif p.collect_schema()["url_key"] == pl.String:  # an index written before URLs were hashed
            p = p.with_columns(pl.col("url_key").map_batches(url_hashes, return_dtype=pl.UInt64))
        frames.append(p.select(cols).with_columns(pl.lit(True).alias("prior")))
    mine = [sigs.lazy()] if isinstance(sigs, (pl.DataFrame, pl.LazyFrame)) else [pl.scan_parquet(f) for f in sigs]
    frames += [f.select(cols).with_columns(pl.lit(False).alias("prior")) for f in mine]
    parts, base = [], 0
    for f in frames:
        rows = int(f.select(pl.len()).collect().item())
        parts.append(_Part(f.with_row_index("gi", offset=base), base, rows))
        base += rows
    return parts


def _fetch(parts: list[_Part], nodes: np.ndarray, cols: list[str]) -> pl.DataFrame:
    """The ``cols`` of the rows numbered ``nodes`` (sorted), by a filtered scan of the parts holding them."""
    out = []
    for part in parts:
        lo, hi = np.searchsorted(nodes, [part.base, part.base + part.rows])
        if lo < hi:
            want = pl.Series(nodes[lo:hi]).cast(part.lf.collect_schema()["gi"])
            rows = part.lf.filter(pl.col("gi").is_in(want.implode())).select(cols).collect(engine="streaming")
            out.append(_own_strings(rows))
    return pl.concat(out)


def _own_strings(df: pl.DataFrame) -> pl.DataFrame:
    """Copy the string columns into buffers of their own: filtered string views would pin every
    string of the file they were read from (memory growing with the documents, not the rows)."""
    strings = [c for c, t in df.schema.items() if t == pl.String]
    return df.with_columns(pl.concat_str(pl.col(c), pl.lit("")).alias(c) for c in strings)


def find_duplicates(
    sigs: pl.DataFrame | pl.LazyFrame | Sequence[str | Path],
    cfg: DedupConfig | None = None,
    prior: pl.DataFrame | pl.LazyFrame | None = None,
    workdir: Path | None = None,
) -> pl.DataFrame:
    """One row per REMOVED document: id, source, duplicate_of, reason, cluster_id, cluster_size,
    against_earlier_run.

    ``sigs`` holds every shard's ``signatures`` (ids unique): in memory, a LazyFrame scanning Parquet
    files, or the Parquet files' paths (read one file at a time: the least memory). The band table
    is streamed once and never held whole; memory stays within ``cfg.memory_mb`` plus polars' read
    buffers plus what the duplicates themselves need (the key buckets spill to a temporary folder
    under ``workdir``, default the system's, when they do not fit). ``prior`` is
    an earlier run's index (``load_index``): its documents join the clusters, always win the keeper
    choice and are never reported. A removed row is an ``exact_duplicate`` when its normalised text
    equals the keeper's, else a ``url_duplicate`` when both are web documents with the same URL,
    else a ``near_duplicate``; ``cluster_id`` is the keeper's id.
    """
    cfg = cfg or DedupConfig()
    keys, first_band = _key_exprs(cfg)
    parts = _parts(sigs, cfg, prior) if keys else []
    n_docs = sum(p.rows for p in parts)
    if n_docs == 0:
        return pl.DataFrame(schema=REMOVED_SCHEMA)
    if n_docs >= 1 << 32:
        raise ValueError("dedup: node numbers are 32-bit; split runs above 4 billion documents")
    partitions, on_disk = _plan(n_docs, len(keys), cfg)
    with tempfile.TemporaryDirectory(prefix="refinery-dedup-", dir=workdir) if on_disk else nullcontext() as tmp:
        spool = _Spool(len(keys), partitions, Path(tmp) if tmp else None)
        _spool_keys(parts, keys, spool)
        u, v = _edges(parts, cfg, spool, first_band)
    if len(u) == 0:
        return pl.DataFrame(schema=REMOVED_SCHEMA)
    nodes, labels = _clustered(u, v)
    c = _fetch(parts, nodes, ["gi", *_KEY_COLS, "prior"])
    if not np.array_equal(c["gi"].to_numpy(), nodes):  # scans keep row order; never trust it blindly
        c = c.sort("gi")
        assert np.array_equal(c["gi"].to_numpy(), nodes), "dedup: clustered rows missing from the inputs"
    return _removed_rows(c.with_columns(pl.Series("label", labels)), cfg)


def _removed_rows(c: pl.DataFrame, cfg: DedupConfig) -> pl.DataFrame:
    """Removed documents among the clustered rows ``c`` (their keys and component ``label``): one sort
    puts every cluster's keeper first, window expressions give each row its keeper's fields."""
    by, desc = _keeper_order(cfg)
    c = c.sort([pl.col("label"), *by], descending=[False, *desc], nulls_last=True)

    def keeper(col: str) -> pl.Expr:
        return pl.col(col).first().over("label")

    removed = (
        c.select(
            "id",
            "source",
            keeper("id").alias("duplicate_of"),
            pl.when(pl.col("exact_hash") == keeper("exact_hash"))
            .then(pl.lit("exact_duplicate"))
            .when(pl.col("url_key") == keeper("url_key"))
            .then(pl.lit("url_duplicate"))
            .otherwise(pl.lit("near_duplicate"))
            .alias("reason"),
            keeper("id").alias("cluster_id"),
            pl.len().over("label").cast(pl.Int64).alias("cluster_size"),
            keeper("prior").alias("against_earlier_run"),
            ((pl.col("gi") != keeper("gi")) & ~pl.col("prior")).alias("__removed"),
        )
        .filter("__removed")
        .drop("__removed")
        .sort("cluster_id", "id")
    )
    return removed.cast(REMOVED_SCHEMA)  # type: ignore[arg-type]


def write_index(
    sigs: pl.DataFrame | pl.LazyFrame,
    removed: pl.DataFrame,
    out_dir: Path,
    cfg: DedupConfig,
    prior: pl.DataFrame | pl.LazyFrame | None = None,
) -> int:
    """Persist the signatures of every kept document (plus the earlier index) as this run's index, so a
    later run can be deduplicated against it without recomputing anything. Returns its row count."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cols = [*_KEY_COLS, "bands"]
    kept = sigs.lazy().select(cols).join(removed.lazy().select("id"), on="id", how="anti", maintain_order="left")
    lf = pl.concat([prior.lazy().select(cols), kept]) if prior is not None else kept
    lf.sink_parquet(out_dir / INDEX_FILE, compression="zstd")
    rows = pl.scan_parquet(out_dir / INDEX_FILE).select(pl.len()).collect().item()
    (out_dir / INDEX_META).write_text(json.dumps({"params": index_params(cfg), "documents": rows}, indent=2))
    return int(rows)


_SIZE_BUCKETS = ((2, 2), (3, 3), (4, 4), (5, 9), (10, 99), (100, None))


def cluster_summary(
    removed: pl.DataFrame, top: int = 10, totals_by_source: dict[str, int] | None = None
) -> dict[str, Any]:
    """Figures for the manifest and report from ``find_duplicates``' output: cluster counts, a size
    histogram, the largest clusters, and the removed share per source (given documents per source)."""
    by_reason = dict(removed.group_by("reason").len().sort("reason").iter_rows()) if len(removed) else {}
    clusters = (
        removed.group_by("cluster_id")
        .agg(pl.col("cluster_size").first())
        .sort("cluster_size", "cluster_id", descending=[True, False])
    )
    hist = {}
    for lo, hi in _SIZE_BUCKETS:
        sel = clusters["cluster_size"] >= lo if hi is None else clusters["cluster_size"].is_between(lo, hi)
        hist[f"{lo}+" if hi is None else (str(lo) if lo == hi else f"{lo}-{hi}")] = int(sel.sum())
    removed_src = dict(removed.group_by("source").len().sort("source").iter_rows()) if len(removed) else {}
    by_source = {}
    for s in sorted(set(removed_src) | set(totals_by_source or {})):
        total = (totals_by_source or {}).get(s)
        n = int(removed_src.get(s, 0))
        by_source[s] = {"removed": n, "documents": total, "share": round(n / total, 4) if total else None}
    return {
        "clusters": len(clusters),
        "removed": len(removed),
        "removed_exact": int(by_reason.get("exact_duplicate", 0)),
        "removed_near": int(by_reason.get("near_duplicate", 0)),
        "removed_url": int(by_reason.get("url_duplicate", 0)),
        "removed_by_reason": {k: int(v) for k, v in by_reason.items()},
        "removed_against_earlier_run": int(removed["against_earlier_run"].sum()) if len(removed) else 0,
        "cluster_size_histogram": hist,
        "removed_by_source": by_source,
        "largest_clusters": [{"cluster_id": c, "keeper": c, "size": int(s)} for c, s in clusters.head(top).iter_rows()],
    }


# ----------------------------------------------------------------------------------------------
# step 3: apply


def apply_duplicates(df: pl.DataFrame, removed: pl.DataFrame) -> StageResult:
    """Split one shard by the global ``removed`` table; rejected rows name their keeper in
    ``duplicate_of`` and carry ``cluster_id`` / ``cluster_size`` in ``detail``."""
    rm = removed.select(
        "id",
        "duplicate_of",
        "reason",
        pl.struct(
            "cluster_id", "cluster_size", *(["against_earlier_run"] if "against_earlier_run" in removed.columns else [])
        )
        .struct.json_encode()
        .alias("detail"),
    )
    kept = df.join(rm.select("id"), on="id", how="anti", maintain_order="left")
    dropped = df.drop("duplicate_of", "reason", "detail", strict=False).join(
        rm, on="id", how="inner", maintain_order="left"
    )
    stats = {
        "removed_exact": int((dropped["reason"] == "exact_duplicate").sum()),
        "removed_near": int((dropped["reason"] == "near_duplicate").sum()),
        "removed_url": int((dropped["reason"] == "url_duplicate").sum()),
    }
    return StageResult(kept=kept, rejected=to_rejected(dropped, STAGE), stats=stats)


def dedup_frames(frames: list[pl.DataFrame], cfg: DedupConfig | None = None) -> list[StageResult]:
    """All three steps in-process, for small runs and tests."""
    cfg = cfg or DedupConfig()
    prior = load_index(cfg.against, cfg)
    removed = find_duplicates(pl.concat([signatures(f, cfg) for f in frames]), cfg, prior=prior)
    return [apply_duplicates(f, removed) for f in frames]


# ----------------------------------------------------------------------------------------------
# inspection


def inspect_pairs(rejected_df: pl.DataFrame, docs_df: pl.DataFrame, n: int = 5) -> list[dict[str, Any]]:
    """Side-by-side samples from the largest clusters: one removed document and its kept copy each.

    ``rejected_df`` is the run's rejected table (other stages are ignored), ``docs_df`` the kept
    documents (``id``, ``text``). The kept text is None when a later stage removed the keeper."""
    dups = rejected_df.filter(pl.col("stage") == STAGE)
    if dups.is_empty():
        return []
    detail = pl.col("detail").str.json_decode(pl.Struct({"cluster_id": pl.String, "cluster_size": pl.Int64}))
    dups = dups.with_columns(detail.alias("__d")).with_columns(
        pl.col("__d").struct.field("cluster_id").fill_null(pl.col("duplicate_of")).alias("cluster_id"),
        pl.col("__d").struct.field("cluster_size").fill_null(2).alias("cluster_size"),
    )
    picks = (
        dups.sort(["cluster_size", "cluster_id", "id"], descending=[True, False, False])
        .group_by("cluster_id", maintain_order=True)
        .first()
        .head(n)
    )
    kept = dict(docs_df.filter(pl.col("id").is_in(picks["duplicate_of"].implode())).select("id", "text").iter_rows())
    return [
        {
            "cluster_id": r["cluster_id"],
            "cluster_size": r["cluster_size"],
            "reason": r["reason"],
            "removed_id": r["id"],
            "kept_id": r["duplicate_of"],
            "removed_text": r["text"],
            "kept_text": kept.get(r["duplicate_of"]),
        }
        for r in picks.iter_rows(named=True)
    ]


def dedup_report_rows(stats: dict[str, Any]) -> list[tuple[str, list[str], list[list[Any]]]]:
    """Report tables from the dedup stage's manifest stats: (title, header, rows) each."""
    tables: list[tuple[str, list[str], list[list[Any]]]] = []
    lsh = stats.get("lsh") or {}
    if lsh:
        tables.append(("LSH parameters", ["parameter", "value"], [[k, v] for k, v in lsh.items()]))
    hist = stats.get("cluster_size_histogram") or {}
    if hist:
        tables.append(("Cluster sizes", ["cluster size", "clusters"], [[k, v] for k, v in hist.items()]))
    by_source = stats.get("removed_by_source") or {}
    if by_source:
        rows = [
            [s, v.get("removed"), v.get("documents"), f"{100 * v['share']:.2f}%" if v.get("share") is not None else ""]
            for s, v in by_source.items()
        ]
        tables.append(("Removed by source", ["source", "removed", "documents", "removed share"], rows))
    largest = stats.get("largest_clusters") or []
    if largest:
        tables.append(
            ("Largest clusters", ["kept document", "cluster size"], [[c["keeper"], c["size"]] for c in largest])
        )
    return tables
