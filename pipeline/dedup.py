"""Global exact + MinHash-LSH near-duplicate removal (stage ``"dedup"``).

Three steps, so a flow can map steps 1 and 3 over shards and run step 2 once:

1. ``signatures(df, cfg)`` per shard: id, source, length, exact hash, LSH band hashes.
2. ``find_duplicates(all_sigs, cfg)`` over the concatenation of every shard's signatures:
   exact groups (equal ``exact_hash``) and near-duplicate candidates (equal hash in any band) become
   edges of one graph; its connected components are the clusters; each cluster keeps one document
   chosen by ``keep_order`` (never by hash or input order) and every other member is removed.
3. ``apply_duplicates(shard_df, removed)`` per shard: anti-join to keep, join to reject.

MinHash values are those of ``datasketch.MinHash(num_perm, seed=seed, hashfunc=xxhash.xxh32_intdigest)``
(default ``affine32`` scheme) fed with the UTF-8 shingles; we compute them with numpy over all shingles
of a batch at once instead of one MinHash object per document (tests check the values are equal).
Shingles are ``ngram`` consecutive words of the normalised text (lowercased, whitespace collapsed);
a document with fewer than ``ngram`` (but at least ``min_words``) words is one shingle.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import polars as pl
import xxhash
from datasketch import MinHash
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipeline.schema import StageResult, to_rejected

STAGE = "dedup"
_KEEP_KEYS = ("length", "source", "id")
_MAX_CHUNK_SHINGLES = 1 << 17  # shingles per numpy block: 2^17 x 128 perms x 4 B = 64 MiB


class DedupConfig(BaseModel):
    """Exact and near-duplicate removal settings."""

    model_config = ConfigDict(extra="forbid")

    exact: bool = True  # remove documents whose normalised text is identical
    near: bool = True  # remove MinHash-LSH near duplicates
    threshold: float = Field(0.8, gt=0.0, lt=1.0)  # Jaccard similarity the LSH bands are tuned for
    num_perm: int = Field(128, ge=2)
    ngram: int = Field(5, ge=1)  # word shingle size
    seed: int = 1  # MinHash permutation seed (datasketch's default)
    # LSH bands x rows; None = minimise 0.5 * P(false positive) + 0.5 * P(false negative) at
    # ``threshold`` (datasketch's MinHashLSH parameter choice). Set both to override.
    bands: int | None = None
    rows: int | None = None
    min_words: int = Field(5, ge=1)  # shorter documents take part in exact dedup only
    # Keeper within a cluster: longest text first, then source priority, then smallest id.
    keep_order: list[str] = Field(default_factory=lambda: list(_KEEP_KEYS))
    source_priority: list[str] = Field(default_factory=lambda: ["book", "web", "code", "other"])

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
        return _optimal_bands(self.threshold, self.num_perm)


@lru_cache(maxsize=64)
def _optimal_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    from datasketch.lsh import _optimal_param  # private, but it is the reference choice

    b, r = _optimal_param(threshold, num_perm, 0.5, 0.5)
    return int(b), int(r)


# ----------------------------------------------------------------------------------------------
# step 1: signatures


def _normalised(text: pl.Expr) -> pl.Expr:
    return text.fill_null("").str.to_lowercase().str.replace_all(r"\s+", " ").str.strip_chars()


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


def _minhash(shingle_hashes: np.ndarray, counts: np.ndarray, num_perm: int, seed: int) -> np.ndarray:
    """(docs, num_perm) uint32 MinHash values; doc i owns the next ``counts[i]`` (>= 1) shingle hashes."""
    a, b = _permutations(num_perm, seed)
    out = np.empty((len(counts), num_perm), dtype=np.uint32)
    ends = np.cumsum(counts)
    starts = ends - counts
    d0 = 0
    with np.errstate(over="ignore"):
        while d0 < len(counts):
            # take whole documents, up to the block budget (at least one document)
            d1 = int(np.searchsorted(ends, starts[d0] + _MAX_CHUNK_SHINGLES, side="right"))
            d1 = max(d1, d0 + 1)
            lo, hi = int(starts[d0]), int(ends[d1 - 1])
            hv = _fmix32(shingle_hashes[lo:hi])
            # (perms, shingles) layout: reduceat along contiguous rows is ~30x faster than axis 0
            phv = a[:, None] * hv[None, :]  # uint32 wrap-around = mod 2^32
            phv += b[:, None]
            out[d0:d1] = np.minimum.reduceat(phv, starts[d0:d1] - lo, axis=1).T
            d0 = d1
    return out


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


def signatures(df: pl.DataFrame, cfg: DedupConfig | None = None) -> pl.DataFrame:
    """Per-shard signature table: id, source, length (chars), n_words, exact_hash (u64, xxh3_64 of the
    normalised text) and ``bands`` (list[u64], one hash per LSH band; null for docs under min_words
    or when near dedup is off)."""
    cfg = cfg or DedupConfig()
    bands, rows = cfg.band_params()
    base = df.select(
        pl.col("id"),
        pl.col("source"),
        pl.col("text").fill_null("").str.len_chars().cast(pl.Int64).alias("length"),
        _normalised(pl.col("text")).alias("__norm"),
    ).with_columns(
        pl.when(pl.col("__norm") == "")
        .then(0)
        .otherwise(pl.col("__norm").str.count_matches(" ", literal=True) + 1)
        .cast(pl.Int64)
        .alias("n_words")
    )
    # xxh3 is not a polars builtin; hashing is the only per-document Python work here.
    h64 = xxhash.xxh3_64_intdigest
    exact = [h64(x) for x in base["__norm"].cast(pl.Binary).to_list()]
    base = base.with_columns(pl.Series("exact_hash", exact, dtype=pl.UInt64))

    band_col = pl.Series("bands", [None] * len(base), dtype=pl.List(pl.UInt64))
    eligible = (pl.col("n_words") >= cfg.min_words) if cfg.near else pl.lit(False)
    near = base.with_row_index("__ri").filter(eligible)
    if len(near):
        n = cfg.ngram
        words = (
            near.select("__ri", pl.col("__norm").str.split(" ").alias("w"))
            .explode("w")
            .filter(pl.col("w").is_not_null())
        )
        same = pl.col("__ri").shift(-(n - 1)) == pl.col("__ri")
        shingles = words.select(
            "__ri",
            pl.when(same).then(pl.concat_str([pl.col("w").shift(-k) for k in range(n)], separator=" ")).alias("s"),
        ).filter(pl.col("s").is_not_null())
        # documents with fewer than n words: the whole normalised text is the one shingle
        short = near.filter(pl.col("n_words") < n).select("__ri", pl.col("__norm").alias("s"))
        shingles = pl.concat([shingles, short]).sort("__ri", maintain_order=True)
        h32 = xxhash.xxh32_intdigest  # the hashfunc datasketch would call, on the same UTF-8 bytes
        hashes = np.array([h32(x) for x in shingles["s"].cast(pl.Binary).to_list()], dtype=np.uint32)
        counts = shingles.group_by("__ri", maintain_order=True).len()
        sig = _minhash(hashes, counts["len"].to_numpy().astype(np.int64), cfg.num_perm, cfg.seed)
        bh = _band_hashes(sig, bands, rows)
        # counts rows are in __ri order (shingles were sorted), so they align with bh rows
        vals = pl.Series("bands", bh).cast(pl.List(pl.UInt64))  # 2-D array -> list column
        filled = pl.DataFrame({"__ri": counts["__ri"], "bands": vals})
        band_col = (
            base.with_row_index("__ri").select("__ri").join(filled, on="__ri", how="left", maintain_order="left")
        )["bands"]
    return base.drop("__norm").with_columns(band_col.alias("bands"))


# ----------------------------------------------------------------------------------------------
# step 2: clusters


def _ranked(sigs: pl.DataFrame, cfg: DedupConfig) -> pl.DataFrame:
    """``sigs`` sorted by keep_order, with ``rank`` 0..n-1 (0 = the most preferred keeper)."""
    prio = {s: i for i, s in enumerate(cfg.source_priority)}
    keys = {
        "length": (pl.col("length"), True),
        "source": (pl.col("source").replace_strict(prio, default=len(prio), return_dtype=pl.Int64), False),
        "id": (pl.col("id"), False),
    }
    by = [keys[k][0] for k in cfg.keep_order]
    desc = [keys[k][1] for k in cfg.keep_order]
    return sigs.sort(by, descending=desc, maintain_order=False).with_row_index("rank")


def _components(n: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Label of every node = smallest node of its connected component (min-label propagation with
    pointer jumping; vectorised, a handful of rounds in practice)."""
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


def find_duplicates(sigs: pl.DataFrame, cfg: DedupConfig | None = None) -> pl.DataFrame:
    """One row per REMOVED document: id, duplicate_of, reason, cluster_id, cluster_size.

    ``sigs`` is the concatenation of every shard's ``signatures`` (ids must be unique). A removed row
    is an ``exact_duplicate`` when its normalised text equals the keeper's, else a ``near_duplicate``.
    """
    cfg = cfg or DedupConfig()
    out_schema = {
        "id": pl.String(),
        "duplicate_of": pl.String(),
        "reason": pl.String(),
        "cluster_id": pl.String(),
        "cluster_size": pl.Int64(),
    }
    if len(sigs) == 0 or not (cfg.exact or cfg.near):
        return pl.DataFrame(schema=out_schema)
    r = _ranked(sigs, cfg)
    edges: list[pl.DataFrame] = []
    if cfg.exact:
        edges.append(
            r.select("rank", pl.col("rank").min().over("exact_hash").alias("root")).filter(
                pl.col("rank") != pl.col("root")
            )
        )
    if cfg.near and r["bands"].drop_nulls().len():
        # one (rank, band, hash) row per band; equal (band, hash) = LSH candidate group
        exploded = (
            r.filter(pl.col("bands").is_not_null())
            .select("rank", pl.col("bands").alias("h"), pl.int_ranges(pl.col("bands").list.len()).alias("band"))
            .explode("h", "band")
        )
        edges.append(
            exploded.select("rank", pl.col("rank").min().over("band", "h").alias("root"))
            .filter(pl.col("rank") != pl.col("root"))
            .unique()
        )
    e = pl.concat(edges) if edges else pl.DataFrame(schema={"rank": pl.UInt32, "root": pl.UInt32})
    labels = _components(len(r), e["rank"].to_numpy().astype(np.int64), e["root"].to_numpy().astype(np.int64))
    r = r.with_columns(pl.Series("label", labels))
    keeper = r.select(
        pl.col("rank").cast(pl.Int64).alias("label"),
        pl.col("id").alias("duplicate_of"),
        pl.col("exact_hash").alias("keeper_hash"),
    )
    removed = (
        r.with_columns(pl.len().over("label").cast(pl.Int64).alias("cluster_size"))
        .filter(pl.col("rank").cast(pl.Int64) != pl.col("label"))
        .join(keeper, on="label", how="left")
        .select(
            "id",
            "duplicate_of",
            pl.when(pl.col("exact_hash") == pl.col("keeper_hash"))
            .then(pl.lit("exact_duplicate"))
            .otherwise(pl.lit("near_duplicate"))
            .alias("reason"),
            pl.col("duplicate_of").alias("cluster_id"),
            "cluster_size",
        )
        .sort("cluster_id", "id")
    )
    return removed.cast(out_schema)  # type: ignore[arg-type]


def cluster_summary(removed: pl.DataFrame, top: int = 10) -> dict[str, Any]:
    """Figures for the manifest from ``find_duplicates``' output."""
    by_reason = dict(removed.group_by("reason").len().iter_rows()) if len(removed) else {}
    clusters = removed.group_by("cluster_id").agg(pl.col("cluster_size").first()).sort(
        "cluster_size", "cluster_id", descending=[True, False]
    )
    return {
        "clusters": len(clusters),
        "removed": len(removed),
        "removed_exact": int(by_reason.get("exact_duplicate", 0)),
        "removed_near": int(by_reason.get("near_duplicate", 0)),
        "largest_clusters": [
            {"cluster_id": c, "size": int(s)} for c, s in clusters.head(top).iter_rows()
        ],
    }


# ----------------------------------------------------------------------------------------------
# step 3: apply


def apply_duplicates(df: pl.DataFrame, removed: pl.DataFrame) -> StageResult:
    """Split one shard by the global ``removed`` table."""
    rm = removed.select("id", "duplicate_of", "reason")
    kept = df.join(rm.select("id"), on="id", how="anti", maintain_order="left")
    dropped = df.drop("duplicate_of", "reason", strict=False).join(rm, on="id", how="inner", maintain_order="left")
    stats = {
        "removed_exact": int((dropped["reason"] == "exact_duplicate").sum()),
        "removed_near": int((dropped["reason"] == "near_duplicate").sum()),
    }
    return StageResult(kept=kept, rejected=to_rejected(dropped, STAGE), stats=stats)


def dedup_frames(frames: list[pl.DataFrame], cfg: DedupConfig | None = None) -> list[StageResult]:
    """All three steps in-process, for small runs and tests."""
    cfg = cfg or DedupConfig()
    removed = find_duplicates(pl.concat([signatures(f, cfg) for f in frames]), cfg)
    return [apply_duplicates(f, removed) for f in frames]
