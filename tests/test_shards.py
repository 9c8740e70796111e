"""Tokenizer training, token shards and the train/validation split."""

from __future__ import annotations

import random

import polars as pl
import pytest

from pipeline.shards import ShardsConfig, assign_split, tokenize_docs
from pipeline.tokenizer import TokenizerConfig, load_tokenizer, train_tokenizer

WORDS = "river stone bright quiet harbour lantern window garden morning letter journey silver candle".split()


def _docs(n: int, source: str = "web", seed: int = 0) -> pl.DataFrame:
    rng = random.Random(seed)
    texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 80))) for _ in range(n)]
    return pl.DataFrame({"id": [f"{source}{i:04d}" for i in range(n)], "source": [source] * n, "text": texts})


def test_split_is_stable_and_gives_every_source_validation():
    docs = pl.concat([_docs(100, "web"), _docs(3, "book")])
    a = assign_split(docs, ShardsConfig(val_fraction=0.1))
    b = assign_split(docs.sample(fraction=1.0, shuffle=True, seed=3), ShardsConfig(val_fraction=0.1))
    assert dict(a.iter_rows()) == dict(b.iter_rows())
    merged = a.join(docs, on="id")
    assert merged.filter((pl.col("source") == "web") & (pl.col("split") == "val")).height == 10
    assert merged.filter((pl.col("source") == "book") & (pl.col("split") == "val")).height == 1
    other_seed = assign_split(docs, ShardsConfig(val_fraction=0.1, seed=1))
    assert dict(other_seed.iter_rows()) != dict(a.iter_rows())


def test_parts_of_a_group_stay_together():
    docs = _docs(60).with_columns((pl.int_range(pl.len()) // 6).cast(pl.String).alias("group_id"))
    split = assign_split(docs, ShardsConfig(val_fraction=0.2)).join(docs, on="id")
    per_group = split.group_by("group_id").agg(pl.col("split").n_unique())
    assert per_group["split"].max() == 1
    assert split.filter(pl.col("split") == "val").height == 12  # 2 of 10 groups


def test_tokenize_round_trips_and_counts_bytes(tmp_path):
    docs = _docs(200)
    docs = docs.with_columns(pl.concat_str([pl.col("text"), pl.lit("  naïve café 12345\n\tindent")]))
    docs.write_parquet(tmp_path / "d.parquet")
    info = train_tokenizer([tmp_path / "d.parquet"], tmp_path / "tok", TokenizerConfig(vocab_size=400))
    assert info["vocab_size"] <= 400 and info["sample_docs"] == 200
    out = tokenize_docs(docs, tmp_path / "tok", ShardsConfig())
    assert out["tokens"].dtype == pl.List(pl.UInt16)
    assert (out["n_tokens"] == out["tokens"].list.len()).all()
    assert (out["n_bytes"] == docs["text"].str.len_bytes()).all()
    sp = load_tokenizer(tmp_path / "tok")
    assert sp.decode(out["tokens"][0].to_list()) == docs["text"][0]  # identity normalisation: exact


def test_small_vocab_is_refused(tmp_path):
    with pytest.raises(ValueError, match="at least"):
        train_tokenizer([], tmp_path, TokenizerConfig(vocab_size=100))
