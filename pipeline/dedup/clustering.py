"""Step 2 of dedup: clusters of duplicates over every shard's signatures, and the documents they remove.

Exact groups (equal ``exact_hash``), web documents with equal (ingest-normalised) URLs and LSH candidates
(equal hash in one band) become edges; connected components of those edges are the clusters; each cluster
keeps the document first in ``keep_order`` (never hash or input order) and every other member is removed.

Out of core: one streaming pass over the signatures writes every grouping key (exact hash, URL hash,
one hash per LSH band) with its node number ``gi`` into buckets by (key kind, hash % parts). Each
bucket is grouped on its own (a numpy sort), so memory holds one bucket at a time; buckets stay in
memory when the whole key table fits ``memory_mb``, else they are files in a temporary folder.
Connected components run over the nodes that appear in an edge only, and the keeper keys are read
(a filtered scan) for those nodes only: nothing holds a row for every document.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import NamedTuple

import numpy as np
import polars as pl

from pipeline.dedup.config import DedupConfig
from pipeline.dedup.hashing import url_hashes

REMOVED_SCHEMA = {
    "id": pl.String(),
    "source": pl.String(),
    "duplicate_of": pl.String(),
    "reason": pl.String(),
    "cluster_id": pl.String(),
    "cluster_size": pl.Int64(),
    "against_earlier_run": pl.Boolean(),
}
KEY_COLS = ["id", "source", "length", "quality", "exact_hash", "url_key"]
_SPOOL_BYTES = 12  # one spooled key: u64 hash + u32 node
_GROUP_BYTES = 40  # working bytes per key while a bucket is grouped: the key, its argsort, sorted copies
_BATCH_ROWS = 1 << 16  # documents per batch of the spool pass


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
    c = _fetch(parts, nodes, ["gi", *KEY_COLS, "prior"])
    if not np.array_equal(c["gi"].to_numpy(), nodes):  # scans keep row order; never trust it blindly
        c = c.sort("gi")
        assert np.array_equal(c["gi"].to_numpy(), nodes), "dedup: clustered rows missing from the inputs"
    return _removed_rows(c.with_columns(pl.Series("label", labels)), cfg)


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
    cols = [*KEY_COLS, "bands", *(["shingles"] if cfg.verify else [])]
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


def _clustered(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(nodes in any edge, sorted; label of each = its component's smallest node), over those nodes only."""
    nodes, inv = np.unique(np.concatenate([u, v]), return_inverse=True)
    labels = _components(len(nodes), inv[: len(u)].astype(np.int64), inv[len(u) :].astype(np.int64))
    return nodes, nodes[labels]


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
