"""Tokenizer training, token shards and the train/validation split."""

from __future__ import annotations

import random

import polars as pl
import pytest

from pipeline.shards import ShardsConfig, assign_split, tokenize_docs
from pipeline.tokenizer.training import TokenizerConfig, load_tokenizer, train_tokenizer

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


def _train_small(tmp_path, **cfg):
    docs = _docs(150).with_columns(pl.concat_str([pl.col("text"), pl.lit("  naïve café 2024 <|sep|>\n\tend")]))
    docs.write_parquet(tmp_path / "d.parquet")
    info = train_tokenizer([tmp_path / "d.parquet"], tmp_path / "tok", TokenizerConfig(vocab_size=420, **cfg))
    return docs, info, load_tokenizer(tmp_path / "tok")


@pytest.mark.parametrize("model_type", ["bpe", "unigram"])
def test_tokenizer_options(tmp_path, model_type):
    docs, info, sp = _train_small(
        tmp_path, model_type=model_type, user_defined_symbols=["<|sep|>"], control_symbols=["<|ctl|>"]
    )
    assert info["model_type"] == model_type
    sep = sp.piece_to_id("<|sep|>")
    assert sep in sp.encode("a <|sep|> b")  # user-defined symbols are single tokens in text
    assert sp.piece_to_id("<|ctl|>") not in sp.encode("<|ctl|>")  # control symbols only by id
    assert all(len(sp.encode(d)) == 1 for d in "0123456789")  # digits split
    text = docs["text"][0] + " 😀 ∮"
    assert sp.decode(sp.encode(text)) == text  # byte fallback: no <unk>, exact round trip
    assert (sp.bos_id(), sp.eos_id(), sp.pad_id()) == (1, 2, 3)


def test_temperature_sampling_lifts_small_sources(tmp_path):
    from pipeline.tokenizer.training import sample_texts, source_budgets

    budgets = source_budgets({"web": 900_000, "book": 100_000}, TokenizerConfig(sample_mb=0.2, temperature=2.0))
    assert budgets["book"] / sum(budgets.values()) > 0.2  # natural share is 0.1
    natural = source_budgets({"web": 900_000, "book": 100_000}, TokenizerConfig(sample_mb=0.2, temperature=1.0))
    assert abs(natural["book"] / sum(natural.values()) - 0.1) < 0.01
    docs = pl.concat([_docs(300, "web"), _docs(30, "book", seed=1)])
    docs.write_parquet(tmp_path / "d.parquet")
    cfg = TokenizerConfig(sample_mb=0.01, seed=4)
    a, b = sample_texts([tmp_path / "d.parquet"], cfg), sample_texts([tmp_path / "d.parquet"], cfg)
    assert a["id"].to_list() == b["id"].to_list()  # seeded and stable
    assert set(a["source"]) == {"web", "book"}


def test_hugging_face_tokenizer_gives_the_same_ids(tmp_path):
    transformers = pytest.importorskip("transformers")
    docs, _, sp = _train_small(tmp_path, user_defined_symbols=["<|sep|>"])
    hf = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "tok"))
    for text in [*docs["text"].head(30), " leading space", "\n\nnewlines\tand tabs", "emoji 🎉"]:
        assert hf.encode(text, add_special_tokens=False) == sp.encode(text)
        assert hf.decode(sp.encode(text)) == text


def test_token_shards_read_with_polars_pyarrow_and_datasets(tmp_path):
    import pyarrow.parquet as pq

    docs, _, _ = _train_small(tmp_path)
    shard = tokenize_docs(docs, tmp_path / "tok", ShardsConfig())
    shard.write_parquet(tmp_path / "train-00000-000.parquet")
    assert pl.read_parquet(tmp_path / "train-00000-000.parquet")["n_tokens"].sum() == shard["n_tokens"].sum()
    assert pq.read_table(tmp_path / "train-00000-000.parquet").num_rows == shard.height
    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset(
        "parquet", data_files=str(tmp_path / "train-*.parquet"), split="train", cache_dir=str(tmp_path / "hf")
    )
    assert ds.num_rows == shard.height and ds[0]["tokens"] == shard["tokens"][0].to_list()


def test_file_parts_bound_tokens_per_file():
    from pipeline.shards import file_parts

    parts = file_parts(pl.Series([40, 40, 40, 40, 40]), 100)
    assert parts.to_list() == [0, 0, 0, 1, 1]


def test_validation_copies_of_train_text_move_to_train():
    from pipeline.shards import text_hash_expr

    docs = _docs(40)
    docs = pl.concat(
        [
            docs,
            docs.head(40).with_columns(
                pl.format("copy{}", pl.col("id")).alias("id"), pl.col("text").str.to_uppercase()
            ),
        ]
    )
    docs = docs.with_columns(text_hash_expr())
    split = assign_split(docs, ShardsConfig(val_fraction=0.2)).join(docs, on="id")
    val_hashes = set(split.filter(pl.col("split") == "val")["text_hash"])
    train_hashes = set(split.filter(pl.col("split") == "train")["text_hash"])
    assert not val_hashes & train_hashes
    dirty = assign_split(docs, ShardsConfig(val_fraction=0.2, decontaminate_val=False)).join(docs, on="id")
    assert set(dirty.filter(pl.col("split") == "val")["text_hash"]) & set(
        dirty.filter(pl.col("split") == "train")["text_hash"]
    )
