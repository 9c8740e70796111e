"""The cross-run dedup index: a run's kept signatures, so that later runs can be deduplicated against them.

A later run names the index in ``DedupConfig.against`` and nothing is recomputed.

An index folder holds ``index.parquet`` (the keeper keys and LSH bands of every kept document, earlier
indexes' rows included) and ``index.json`` (the parameters the signatures were made with, and the row
count); a run folder keeps it as ``dedup_index/``. Only indexes built with the same signature parameters
(``index_params``) are comparable.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from pipeline.dedup.clustering import KEY_COLS
from pipeline.dedup.config import DedupConfig

INDEX_FILE = "index.parquet"
INDEX_META = "index.json"
# Parameters that must match for an earlier run's index to be comparable with this run's signatures.
_INDEX_PARAMS = ("num_perm", "ngram", "shingle", "seed", "min_words")


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
    cols = [*KEY_COLS, "bands"]
    kept = sigs.lazy().select(cols).join(removed.lazy().select("id"), on="id", how="anti", maintain_order="left")
    lf = pl.concat([prior.lazy().select(cols), kept]) if prior is not None else kept
    lf.sink_parquet(out_dir / INDEX_FILE, compression="zstd")
    rows = pl.scan_parquet(out_dir / INDEX_FILE).select(pl.len()).collect().item()
    (out_dir / INDEX_META).write_text(json.dumps({"params": index_params(cfg), "documents": rows}, indent=2))
    return int(rows)


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
    """The signature parameters an index is built with (``index.json``); indexes compare only when equal."""
    b, r = cfg.band_params()
    return {**{k: getattr(cfg, k) for k in _INDEX_PARAMS}, "bands": b, "rows": r}
