"""Global exact + MinHash-LSH near-duplicate removal (stage ``"dedup"``): the stage's entry points.

Three steps, so a flow can map steps 1 and 3 over shards and run step 2 once:

1. ``signatures(df, cfg)`` per shard (``pipeline.dedup.hashing``): id, source, length, quality, URL hash,
   exact hash, LSH band hashes.
2. ``find_duplicates(sigs, cfg, prior=...)`` over every shard's signatures (``pipeline.dedup.clustering``;
   a DataFrame, a LazyFrame or the Parquet files, so the band table stays on disk): exact groups, web
   documents with equal URLs and LSH candidates become edges; connected components of those edges are
   the clusters; each cluster keeps the document first in ``keep_order`` and every other member is
   removed. ``prior`` is an earlier run's index (``load_index``; ``write_index`` writes this run's,
   ``pipeline.dedup.index``).
3. ``apply_duplicates(shard_df, removed)`` per shard (``pipeline.dedup.apply``): anti-join to keep, join to
   reject.

Settings are ``DedupConfig`` (``pipeline.dedup.config``); manifest and report figures are
``cluster_summary`` and ``dedup_report_rows`` (``pipeline.dedup.summary``); ``removed_vs_kept`` shows a
finished run's removed duplicates beside their kept copies. The text normalisation and shingle hashing
are ``pipeline.text``'s.
"""

from __future__ import annotations

from pipeline.dedup.apply import PAIR_SCHEMA, apply_duplicates, removed_vs_kept
from pipeline.dedup.clustering import KEY_COLS, REMOVED_SCHEMA, find_duplicates
from pipeline.dedup.config import MAX_PERM, STAGE, DedupConfig
from pipeline.dedup.hashing import signatures, url_hashes
from pipeline.dedup.index import INDEX_FILE, INDEX_META, index_params, load_index, write_index
from pipeline.dedup.summary import cluster_summary, dedup_report_rows
from pipeline.text import normalised_bytes

__all__ = [
    "INDEX_FILE",
    "INDEX_META",
    "KEY_COLS",
    "MAX_PERM",
    "PAIR_SCHEMA",
    "REMOVED_SCHEMA",
    "STAGE",
    "DedupConfig",
    "apply_duplicates",
    "cluster_summary",
    "dedup_report_rows",
    "find_duplicates",
    "index_params",
    "load_index",
    "normalised_bytes",
    "removed_vs_kept",
    "signatures",
    "url_hashes",
    "write_index",
]
