"""Step 3 of dedup: split each shard by the removed table; and the removed-vs-kept view of a finished run.

The view (each removed duplicate beside the copy that was kept) is shared by the report and ``refinery inspect``.
"""

from __future__ import annotations

import polars as pl

from pipeline.dedup.config import STAGE
from pipeline.schema import StageResult, to_rejected

# Columns of ``removed_vs_kept``.
PAIR_SCHEMA = {
    "removed_id": pl.String(),
    "source": pl.String(),
    "reason": pl.String(),
    "kept_id": pl.String(),
    "removed_text": pl.String(),
    "kept_text": pl.String(),
}


def apply_duplicates(df: pl.DataFrame, removed: pl.DataFrame) -> StageResult:
    """Split one shard by the global ``removed`` table (``find_duplicates``): anti-join to keep, join to
    reject. Rejected rows name their keeper in ``duplicate_of`` and carry ``cluster_id`` / ``cluster_size``
    (and ``against_earlier_run``) in ``detail``."""
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


def removed_vs_kept(
    rejected: pl.DataFrame,
    kept_docs: pl.DataFrame | pl.LazyFrame | None,
    removed_docs: pl.DataFrame | pl.LazyFrame | None = None,
) -> pl.DataFrame:
    """Each duplicate the dedup stage removed beside the copy it kept: one row (``PAIR_SCHEMA``: removed_id,
    source, reason, kept_id, removed_text, kept_text) per dedup row of ``rejected``, in its order.

    ``rejected`` holds rows of a run's rejected table, already picked by the caller (the first few, a
    sample): ``id``, ``source``, ``reason``, ``duplicate_of``, and ``text`` unless ``removed_docs`` is given;
    rows of other stages are skipped when it has a ``stage`` column. The removed text is ``rejected``'s
    ``text``, or looked up by id in ``removed_docs`` (``id``, ``text``: e.g. a scan of ``rejected/``, so the
    caller can pick rows without reading every text). The kept text is looked up in ``kept_docs`` (the run's
    final documents, ``id`` and ``text``; a LazyFrame is read for the wanted ids only) and is null when a
    later stage removed the keeper, or when there are no documents."""
    dups = rejected.filter(pl.col("stage") == STAGE) if "stage" in rejected.columns else rejected
    pairs = dups.select(
        pl.col("id").alias("removed_id"),
        "source",
        "reason",
        pl.col("duplicate_of").alias("kept_id"),
        (pl.col("text") if "text" in dups.columns else pl.lit(None, pl.String)).alias("removed_text"),
    )
    if removed_docs is not None:
        found = _texts_by_id(removed_docs, pairs["removed_id"]).rename({"id": "removed_id", "text": "removed_text"})
        pairs = pairs.drop("removed_text").join(found, on="removed_id", how="left", maintain_order="left")
    kept = _texts_by_id(kept_docs, pairs["kept_id"]).rename({"id": "kept_id", "text": "kept_text"})
    pairs = pairs.join(kept, on="kept_id", how="left", maintain_order="left")
    return pairs.select(pl.col(c).cast(t) for c, t in PAIR_SCHEMA.items())


def _texts_by_id(docs: pl.DataFrame | pl.LazyFrame | None, ids: pl.Series) -> pl.DataFrame:
    """``id, text`` of the documents of ``docs`` whose id is in ``ids``, once each (a LazyFrame is read for
    those rows only)."""
    wanted = ids.drop_nulls().unique()
    if docs is None or wanted.len() == 0:
        return pl.DataFrame(schema={"id": pl.String, "text": pl.String})
    return (
        docs.lazy()
        .select("id", "text")
        .filter(pl.col("id").is_in(wanted.implode()))
        .unique("id", keep="last", maintain_order=True)
        .collect()
    )
