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
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
import pyarrow as pa
import xxhash
from datasketch import MinHash
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipeline.schema import StageResult, to_rejected

STAGE = "dedup"
_KEEP_KEYS = ("quality", "length", "source", "id")
_BLOCK = 1 << 12  # shingles per numpy block: 4096 x 128 perms x 4 B = 2 MiB, stays in cache
_CHUNK_BYTES = 4 << 20  # text bytes hashed at once (bounds the numpy position/prefix arrays)
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
    threshold: float = Field(0.8, gt=0.0, lt=1.0)  # Jaccard similarity the LSH bands are tuned for
    num_perm: int = Field(128, ge=2)
    shingle: Literal["word", "char"] = "word"  # word n-grams (default) or character n-grams
    ngram: int = Field(5, ge=1)  # shingle size, in words or characters
    seed: int = 1  # MinHash permutation seed (datasketch's default)
    # LSH bands x rows; None = minimise fp_weight * P(false positive) + fn_weight * P(false negative)
    # around ``threshold`` (datasketch's MinHashLSH optimiser). Set both to override.
    bands: int | None = None
    rows: int | None = None
    fp_weight: float = Field(0.5, ge=0.0, le=1.0)
    fn_weight: float = Field(0.5, ge=0.0, le=1.0)
    # Check every LSH candidate pair by the true Jaccard of its shingle sets (>= threshold).
    verify: bool = False
    min_words: int = Field(5, ge=1)  # shorter documents take part in exact dedup only
    # Keeper within a cluster: highest quality score, then longest text, then source priority, then id.
    keep_order: list[str] = Field(default_factory=lambda: list(_KEEP_KEYS))
    quality_column: str = "quality_score"  # document column read by the "quality" key (missing = null)
    source_priority: list[str] = Field(default_factory=lambda: ["book", "web", "code", "other"])
    # Earlier runs to deduplicate against: run folders (their dedup_index/) or index folders.
    # Their documents always win (they are already published) and are never removed here.
    against: list[str] = Field(default_factory=list)

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
            raise ValueError("set both bands and rows, or neither")
        if self.bands is not None and self.rows is not None:
            if self.bands < 1 or self.rows < 1 or self.bands * self.rows > self.num_perm:
                raise ValueError("need bands >= 1, rows >= 1 and bands * rows <= num_perm")
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
        with ThreadPoolExecutor(threads) as ex:
            parts = [
                p for chunk in ex.map(run, [range(i, min(i + step, nb)) for i in range(0, nb, step)]) for p in chunk
            ]
    else:
        parts = run(range(nb))
    pieces = np.concatenate(parts) if parts else np.empty((0, num_perm), dtype=np.uint32)
    first_piece = np.searchsorted(piece_doc, np.arange(len(counts)))
    return np.minimum.reduceat(pieces, first_piece, axis=0) if len(pieces) else pieces


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
    no ``quality_column``), url_key (the URL of web documents, else null), n_words, exact_hash (u64)
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


def _ranked(keys: pl.DataFrame, cfg: DedupConfig) -> np.ndarray:
    """rank of every row of ``keys`` (0 = the most preferred keeper): earlier runs first, then keep_order."""
    prio = {s: i for i, s in enumerate(cfg.source_priority)}
    exprs = {
        "quality": (pl.col("quality"), True),
        "length": (pl.col("length"), True),
        "source": (pl.col("source").replace_strict(prio, default=len(prio), return_dtype=pl.Int64), False),
        "id": (pl.col("id"), False),
    }
    by = [pl.col("prior")] + [exprs[k][0] for k in cfg.keep_order]
    desc = [True] + [exprs[k][1] for k in cfg.keep_order]
    order = keys.with_row_index("__r").sort(by, descending=desc, nulls_last=True, maintain_order=True)["__r"]
    rank = np.empty(len(keys), dtype=np.int64)
    rank[order.to_numpy()] = np.arange(len(keys))
    return rank


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


def _star_edges(lf: pl.LazyFrame, key: str) -> pl.DataFrame:
    """Edges (gi, root) joining every member of a group of equal ``key`` to the group's smallest gi.
    A group-by (streamed by polars), never a dict of all documents."""
    groups = (
        lf.filter(pl.col(key).is_not_null())
        .group_by(key)
        .agg(pl.col("gi").min().alias("root"), pl.col("gi"))
        .filter(pl.col("gi").list.len() > 1)
        .select("root", "gi")
        .explode("gi")
        .filter(pl.col("gi") != pl.col("root"))
    )
    return groups.collect(engine="streaming")


def _jaccard_ok(lf: pl.LazyFrame, edges: pl.DataFrame, threshold: float) -> pl.DataFrame:
    """Keep the edges whose shingle sets have true Jaccard >= threshold."""
    if edges.is_empty():
        return edges
    need = pl.concat([edges["gi"], edges["root"]]).unique()
    sets = lf.filter(pl.col("gi").is_in(need.implode())).select("gi", "shingles").collect()
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


def find_duplicates(
    sigs: pl.DataFrame | pl.LazyFrame,
    cfg: DedupConfig | None = None,
    prior: pl.DataFrame | pl.LazyFrame | None = None,
) -> pl.DataFrame:
    """One row per REMOVED document: id, source, duplicate_of, reason, cluster_id, cluster_size,
    against_earlier_run.

    ``sigs`` holds every shard's ``signatures`` (ids unique), in memory or as a LazyFrame scanning
    Parquet files: the band table is then read one band at a time and never held whole. ``prior`` is
    an earlier run's index (``load_index``): its documents join the clusters, always win the keeper
    choice and are never reported. A removed row is an ``exact_duplicate`` when its normalised text
    equals the keeper's, else a ``url_duplicate`` when both are web documents with the same URL,
    else a ``near_duplicate``; ``cluster_id`` is the keeper's id.
    """
    cfg = cfg or DedupConfig()
    if not (cfg.exact or cfg.near or cfg.url):
        return pl.DataFrame(schema=REMOVED_SCHEMA)
    cols = [*_KEY_COLS, "bands", *(["shingles"] if cfg.verify else [])]
    parts = [sigs.lazy().select(cols).with_columns(pl.lit(False).alias("prior"))]
    if prior is not None:
        p = prior.lazy()
        names = p.collect_schema().names()
        if cfg.verify and "shingles" not in names:
            p = p.with_columns(pl.lit(None, dtype=pl.List(pl.UInt32)).alias("shingles"))
        if "url_key" not in names:
            p = p.with_columns(pl.lit(None, dtype=pl.String).alias("url_key"))
        parts.insert(0, p.select(cols).with_columns(pl.lit(True).alias("prior")))
    lf = pl.concat(parts, how="vertical").with_row_index("gi")
    keys = lf.select("gi", *_KEY_COLS, "prior").collect()
    if keys.is_empty():
        return pl.DataFrame(schema=REMOVED_SCHEMA)
    n = keys.height
    edges: list[pl.DataFrame] = []
    if cfg.exact:
        edges.append(_star_edges(keys.lazy(), "exact_hash"))
    if cfg.url:
        edges.append(_star_edges(keys.lazy(), "url_key"))
    if cfg.near:
        bands, _ = cfg.band_params()
        for i in range(bands):
            e = _star_edges(lf.select("gi", pl.col("bands").list.get(i, null_on_oob=True).alias("h")), "h")
            if cfg.verify:
                e = _jaccard_ok(lf, e, cfg.threshold)
            edges.append(e)
    e = pl.concat(edges).unique() if edges else pl.DataFrame(schema={"root": pl.UInt32, "gi": pl.UInt32})
    labels = _components(n, e["gi"].to_numpy().astype(np.int64), e["root"].to_numpy().astype(np.int64))
    rank = _ranked(keys, cfg)
    c = keys.with_columns(pl.Series("label", labels), pl.Series("rank", rank))
    c = c.with_columns(pl.len().over("label").cast(pl.Int64).alias("cluster_size")).filter(pl.col("cluster_size") > 1)
    keeper = (
        c.sort("rank")
        .group_by("label", maintain_order=True)
        .first()
        .select(
            "label",
            pl.col("gi").alias("keeper_gi"),
            pl.col("id").alias("duplicate_of"),
            pl.col("exact_hash").alias("keeper_hash"),
            pl.col("url_key").alias("keeper_url"),
            pl.col("prior").alias("against_earlier_run"),
        )
    )
    removed = (
        c.join(keeper, on="label", how="left")
        .filter((pl.col("gi") != pl.col("keeper_gi")) & ~pl.col("prior"))
        .select(
            "id",
            "source",
            "duplicate_of",
            pl.when(pl.col("exact_hash") == pl.col("keeper_hash"))
            .then(pl.lit("exact_duplicate"))
            .when(pl.col("url_key") == pl.col("keeper_url"))
            .then(pl.lit("url_duplicate"))
            .otherwise(pl.lit("near_duplicate"))
            .alias("reason"),
            pl.col("duplicate_of").alias("cluster_id"),
            "cluster_size",
            "against_earlier_run",
        )
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
