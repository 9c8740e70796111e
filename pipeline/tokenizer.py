"""Sentencepiece tokenizer training on a deterministic sample of the curated documents."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import polars as pl
import sentencepiece as spm
import xxhash
from pydantic import BaseModel, ConfigDict

from pipeline.atomic import atomic_write_bytes
from pipeline.ids import stable_rank_key

# Byte fallback reserves 256 pieces; the rest must still cover the corpus' characters.
MIN_VOCAB = 384


class TokenizerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_type: Literal["bpe", "unigram"] = "bpe"
    vocab_size: int = 4096
    # Soft limit: a small corpus gets a smaller vocabulary instead of an error.
    hard_vocab_limit: bool = False
    character_coverage: float = 0.9995
    byte_fallback: bool = True  # no <unk>: any byte sequence round-trips
    split_digits: bool = True
    sample_mb: float = 50.0  # at most this much text is used for training
    max_line_chars: int = 8000  # long lines are cut into pieces this long
    seed: int = 0
    threads: int = 2


def _lines(texts: list[str], max_chars: int) -> Iterator[str]:
    for text in texts:
        for line in text.split("\n"):
            for start in range(0, len(line), max_chars):
                piece = line[start : start + max_chars]
                if piece.strip():
                    yield piece


def sample_texts(doc_paths: list[Path], cfg: TokenizerConfig) -> pl.DataFrame:
    """A seeded sample of documents up to ``sample_mb``: ordered by a hash of (seed, id)."""
    docs = pl.concat([pl.read_parquet(p, columns=["id", "source", "text"]) for p in doc_paths], how="vertical")
    docs = docs.with_columns(
        stable_rank_key(docs["id"], cfg.seed).alias("_order"),
        pl.col("text").str.len_bytes().alias("_bytes"),
    ).sort(["_order", "id"])
    budget = int(cfg.sample_mb * 1_000_000)
    return docs.filter(pl.col("_bytes").cum_sum().shift(1, fill_value=0) < budget).drop("_order", "_bytes")


def train_tokenizer(doc_paths: list[Path], out_dir: Path, cfg: TokenizerConfig) -> dict:
    """Train on the sample and write ``tokenizer.model``, ``tokenizer.vocab``, ``tokenizer.json``."""
    if cfg.vocab_size < MIN_VOCAB:
        raise ValueError(f"tokenizer vocab_size must be at least {MIN_VOCAB} (byte fallback uses 256)")
    sample = sample_texts(doc_paths, cfg)
    if sample.is_empty():
        raise ValueError("no documents left to train a tokenizer on")
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=_lines(sample["text"].to_list(), cfg.max_line_chars),
        model_writer=model,
        model_type=cfg.model_type,
        vocab_size=cfg.vocab_size,
        hard_vocab_limit=cfg.hard_vocab_limit,
        character_coverage=cfg.character_coverage,
        byte_fallback=cfg.byte_fallback,
        split_digits=cfg.split_digits,
        # Exact round trips for code and prose: no NFKC rewriting, keep whitespace as written.
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        allow_whitespace_only_pieces=True,
        max_sentence_length=cfg.max_line_chars * 4,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=3,
        num_threads=cfg.threads,
        minloglevel=2,
    )
    proto = model.getvalue()
    sp = spm.SentencePieceProcessor(model_proto=proto)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out_dir / "tokenizer.model", proto)
    vocab = "".join(f"{sp.id_to_piece(i)}\t{sp.get_score(i)}\n" for i in range(sp.vocab_size()))
    atomic_write_bytes(out_dir / "tokenizer.vocab", vocab.encode())
    info = {
        "type": "sentencepiece",
        "model_type": cfg.model_type,
        "vocab_size": sp.vocab_size(),
        "unk_id": sp.unk_id(),
        "bos_id": sp.bos_id(),
        "eos_id": sp.eos_id(),
        "pad_id": sp.pad_id(),
        "fingerprint": xxhash.xxh3_128_hexdigest(proto),
        "sample_docs": sample.height,
        "sample_bytes": int(sample["text"].str.len_bytes().sum()),
        "sample_by_source": dict(sample.group_by("source").len().sort("source").iter_rows()),
        "seed": cfg.seed,
    }
    atomic_write_bytes(out_dir / "tokenizer.json", json.dumps(info, indent=2, sort_keys=True).encode())
    return info


def load_tokenizer(tok_dir: Path) -> spm.SentencePieceProcessor:
    return spm.SentencePieceProcessor(model_file=str(tok_dir / "tokenizer.model"))
