"""Token shards: curated documents tokenized into Parquet, split into train and validation by document."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
from pydantic import BaseModel, ConfigDict

from pipeline.ids import stable_rank_key
from pipeline.tokenizer import load_tokenizer


class ShardsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    val_fraction: float = 0.1
    # Every source gets at least this many validation documents (if it has twice as many),
    # so a per-source validation loss always exists.
    min_val_docs_per_source: int = 1
    seed: int = 0
    threads: int = 2


def assign_split(docs: pl.DataFrame, cfg: ShardsConfig) -> pl.DataFrame:
    """Return ``id, split`` for documents (columns ``id, source``, optionally ``group_id``).

    Groups (the parts of one book; otherwise each document alone) are ranked per source by a
    seeded hash of the group id, and the lowest ranks go to validation, so a group never straddles
    the split. The result depends only on the ids present and the seed: stable under reruns.
    """
    group = pl.col("group_id").fill_null(pl.col("id")) if "group_id" in docs.columns else pl.col("id")
    groups = docs.select("source", group.alias("_g")).unique(["source", "_g"]).sort(["source", "_g"])
    groups = groups.with_columns(stable_rank_key(groups["_g"], cfg.seed).alias("_h"))
    groups = groups.with_columns(
        pl.col("_h").rank("ordinal").over("source").alias("_rank"),
        pl.len().over("source").alias("_n"),
    )
    n_val = pl.max_horizontal(
        (pl.col("_n") * cfg.val_fraction).round(0),
        pl.when(pl.col("_n") >= 2 * cfg.min_val_docs_per_source).then(pl.lit(cfg.min_val_docs_per_source)).otherwise(0),
    )
    is_val = pl.col("_rank") <= n_val
    groups = groups.select(
        "source", "_g", pl.when(is_val).then(pl.lit("val")).otherwise(pl.lit("train")).alias("split")
    )
    return (
        docs.select("id", "source", group.alias("_g"))
        .join(groups, on=["source", "_g"], how="left", maintain_order="left")
        .select("id", "split")
    )


def token_dtype(vocab_size: int) -> pa.DataType:
    return pa.uint16() if vocab_size <= 2**16 else pa.uint32()


def tokenize_docs(docs: pl.DataFrame, tok_dir: Path, cfg: ShardsConfig) -> pl.DataFrame:
    """Tokenize ``docs`` (all columns kept except ``text``) into ``n_tokens`` and ``tokens``."""
    sp = load_tokenizer(tok_dir)
    ids = sp.encode(docs["text"].to_list(), num_threads=cfg.threads)
    dtype = token_dtype(sp.vocab_size())
    np_dtype = np.uint16 if dtype == pa.uint16() else np.uint32
    lengths = np.fromiter((len(x) for x in ids), dtype=np.int32, count=len(ids))
    flat = np.fromiter((t for doc in ids for t in doc), dtype=np_dtype, count=int(lengths.sum()))
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    tokens = pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(flat, type=dtype))
    keep = [c for c in docs.columns if c != "text"]
    # n_bytes lets evaluation report bits per byte, which compares across tokenizers.
    out = docs.select(keep).with_columns(
        pl.Series("n_tokens", lengths, dtype=pl.Int32), docs["text"].str.len_bytes().cast(pl.Int64).alias("n_bytes")
    )
    return out.with_columns(pl.Series("tokens", pl.from_arrow(tokens)))
