"""Token shards: curated documents tokenized into Parquet, split into train and validation by document."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from pipeline.bounds import MAX_MB, Float, Int, Seed, Threads
from pipeline.ids import stable_rank_key
from pipeline.tokenizer.training import load_tokenizer


class ShardsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Below 1: a source needs training data.
    val_fraction: Float = Field(0.1, ge=0.0, lt=1.0, description="share of each source's document groups held out")
    # Every source gets at least this many validation documents (if it has twice as many),
    # so a per-source validation loss always exists.
    min_val_docs_per_source: Int = Field(1, ge=0, le=1_000_000)
    # A validation group holding a document whose normalised text also occurs in train is moved
    # to train, so validation loss is not flattered by memorised copies (run dedup for near copies).
    decontaminate_val: bool = True
    # Token shard files are cut at about this many tokens, so readers never load a huge file.
    max_tokens_per_file: Int = Field(20_000_000, gt=0, le=2**31 - 1)  # readers load a file whole
    # Held-out text measured for tokenizer metrics (bytes per token, beside a reference tokenizer).
    metrics_mb: Float = Field(10.0, ge=0.0, le=MAX_MB)
    seed: Seed = 0
    threads: Threads = 2


def assign_split(docs: pl.DataFrame, cfg: ShardsConfig) -> pl.DataFrame:
    """Return ``id, split`` for documents (columns ``id, source``, optionally ``group_id``, ``text_hash``).

    Groups (the parts of one book; otherwise each document alone) are ranked per source by a
    seeded hash of the group id, and the lowest ranks go to validation, so a group never straddles
    the split. The result depends only on the ids present and the seed: stable under reruns.
    With ``text_hash`` (see ``text_hash_expr``) and ``decontaminate_val``, validation groups sharing a
    normalised text with train are moved to train.
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
    out = docs.select("id", "source", group.alias("_g")).join(
        groups, on=["source", "_g"], how="left", maintain_order="left"
    )
    if cfg.decontaminate_val and "text_hash" in docs.columns:
        out = out.with_columns(docs["text_hash"].alias("_t"))
        train_texts = out.filter(pl.col("split") == "train")["_t"].implode()
        leaked = out.filter((pl.col("split") == "val") & pl.col("_t").is_in(train_texts))["_g"].unique()
        out = out.with_columns(
            pl.when(pl.col("_g").is_in(leaked.implode()))
            .then(pl.lit("train"))
            .otherwise(pl.col("split"))
            .alias("split")
        )
    return out.select("id", "split")


def text_hash_expr() -> pl.Expr:
    """Hash of the case- and whitespace-normalised text (within one run; polars' hash is not stable across versions)."""
    return pl.col("text").str.to_lowercase().str.replace_all(r"\s+", " ").str.strip_chars().hash().alias("text_hash")


def file_parts(n_tokens: pl.Series, max_tokens: int) -> pl.Series:
    """Index of the output file for each row: a new file starts once ``max_tokens`` is reached."""
    before = n_tokens.cast(pl.Int64).cum_sum() - n_tokens.cast(pl.Int64)
    return (before // max_tokens).cast(pl.Int32).rename("_part")


def token_dtype(vocab_size: int) -> pa.DataType:
    return pa.uint16() if vocab_size <= 2**16 else pa.uint32()


def tokenize_docs(docs: pl.DataFrame, tok_dir: Path, cfg: ShardsConfig) -> pl.DataFrame:
    """Tokenize ``docs`` (all columns kept except ``text``) into ``n_tokens`` and ``tokens``."""
    sp = load_tokenizer(tok_dir)
    ids = sp.encode(docs["text"].to_list(), num_threads=cfg.threads)
    dtype = token_dtype(sp.vocab_size())
    np_dtype = np.uint16 if dtype == pa.uint16() else np.uint32
    lengths = np.fromiter((len(x) for x in ids), dtype=np.int32, count=len(ids))
    flat = np.concatenate([np.asarray(doc, dtype=np_dtype) for doc in ids]) if ids else np.zeros(0, np_dtype)
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    tokens = pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(flat, type=dtype))
    keep = [c for c in docs.columns if c != "text"]
    # n_bytes lets evaluation report bits per byte, which compares across tokenizers.
    out = docs.select(keep).with_columns(
        pl.Series("n_tokens", lengths, dtype=pl.Int32), docs["text"].str.len_bytes().cast(pl.Int64).alias("n_bytes")
    )
    return out.with_columns(pl.Series("tokens", pl.from_arrow(tokens)))
