"""Sentencepiece tokenizer training on a deterministic sample of the curated documents."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Literal

import polars as pl
import sentencepiece as spm
import xxhash
from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipeline.atomic import atomic_write_bytes
from pipeline.bounds import MAX_MB, Float, Int, Seed, Threads, field_error
from pipeline.ids import stable_rank_key

# Pieces every model has: <unk>, <s>, </s>, <pad> (ids 0-3, see train_tokenizer).
SPECIAL_PIECES = 4
BYTE_PIECES = 256  # byte fallback adds <0x00>..<0xFF>
# sentencepiece also needs a piece for every character of the corpus' alphabet (at character_coverage)
# and fails after sampling when the vocabulary cannot hold them: keep room for at least this many, the
# printable ASCII characters and some more. 4 + 256 + 124 = 384 with byte fallback.
MIN_CHAR_PIECES = 124
# Far above any LLM vocabulary (~256k); the unigram trainer cannot grow past its 1M seed pieces anyway.
MAX_VOCAB = 1_000_000


class TokenizerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_type: Literal["bpe", "unigram"] = "bpe"
    vocab_size: Int = Field(
        4096, ge=1, le=MAX_VOCAB, description="pieces, special and byte-fallback pieces and symbols included"
    )
    # Soft limit: a small corpus gets a smaller vocabulary instead of an error.
    hard_vocab_limit: bool = False
    # sentencepiece refuses character_coverage outside [0.98, 1].
    character_coverage: Float = Field(0.9995, ge=0.98, le=1.0)
    byte_fallback: bool = True  # no <unk>: any byte sequence round-trips
    split_digits: bool = True
    # Extra pieces: user-defined symbols are always one token in text; control symbols only by id.
    user_defined_symbols: list[str] = Field(default_factory=list)
    control_symbols: list[str] = Field(default_factory=list)
    sample_mb: Float = Field(50.0, gt=0.0, le=MAX_MB, description="at most this much text (held in memory) is used")
    # Source mixing of the sample: each source's share is proportional to (its share of the
    # text) ** (1 / temperature). 1 keeps natural proportions; larger values flatten them so a
    # small source (books beside a web crawl) is not drowned. Ignored when source_weights is set.
    temperature: Float = Field(2.0, gt=0.0, le=1000.0)
    source_weights: dict[str, Annotated[Float, Field(ge=0.0)]] | None = Field(
        None, description="sample share per source (normalised); sources not named get none"
    )
    # sentencepiece's max_sentence_length (4 bytes a character, so max_line_chars * 4) must lie in [10, 2**30].
    max_line_chars: Int = Field(8000, ge=3, le=2**28, description="long lines are cut into pieces this long")
    seed: Seed = 0
    threads: Threads = 2

    @model_validator(mode="after")
    def _pieces(self) -> TokenizerConfig:
        symbols = [*self.control_symbols, *self.user_defined_symbols]
        # sentencepiece refuses these only after the sample is drawn: fail before any work.
        for name in ("control_symbols", "user_defined_symbols"):
            bad = [s for s in getattr(self, name) if not s or s == "<unk>"]
            if bad:
                raise field_error(name, f"empty strings and <unk> (always id 0) cannot be symbols, got {bad}", bad)
        dupes = sorted({s for s in symbols if symbols.count(s) > 1})
        if dupes:
            msg = f"symbols listed twice (across user_defined_symbols and control_symbols): {dupes}"
            raise field_error("user_defined_symbols", msg, dupes)
        if self.source_weights is not None and not any(w > 0 for w in self.source_weights.values()):
            raise field_error("source_weights", "needs at least one weight > 0", self.source_weights)
        reserved = SPECIAL_PIECES + BYTE_PIECES * self.byte_fallback + len(symbols)
        if self.vocab_size < reserved + MIN_CHAR_PIECES:
            byte_part = f", {BYTE_PIECES} byte fallback" if self.byte_fallback else ""
            msg = (
                f"must be at least {reserved + MIN_CHAR_PIECES}: {reserved} reserved pieces ({SPECIAL_PIECES} "
                f"special{byte_part}, {len(symbols)} symbols) + {MIN_CHAR_PIECES} for the alphabet"
            )
            raise field_error("vocab_size", msg, self.vocab_size)
        return self


def _lines(texts: list[str], max_chars: int) -> Iterator[str]:
    for text in texts:
        for line in text.split("\n"):
            for start in range(0, len(line), max_chars):
                piece = line[start : start + max_chars]
                if piece.strip():
                    yield piece


def source_budgets(bytes_by_source: dict[str, int], cfg: TokenizerConfig) -> dict[str, int]:
    """Bytes to sample per source: temperature-scaled shares of the budget, capped at what a source has.

    Budget a source cannot use (it is smaller than its share) is handed to the others in turn.
    """
    total = sum(bytes_by_source.values())
    if cfg.source_weights is not None:
        weights = {s: cfg.source_weights.get(s, 0.0) for s in bytes_by_source}
    else:
        weights = {s: (b / total) ** (1 / cfg.temperature) if total else 0.0 for s, b in bytes_by_source.items()}
    budget = min(int(cfg.sample_mb * 1_000_000), total)
    out = {s: 0 for s in bytes_by_source}
    open_sources = {s for s, w in weights.items() if w > 0 and bytes_by_source[s] > 0}
    while budget > 0 and open_sources:
        norm = sum(weights[s] for s in open_sources)
        spent = 0
        for s in sorted(open_sources):
            take = min(int(budget * weights[s] / norm) or 1, bytes_by_source[s] - out[s])
            out[s] += take
            spent += take
        open_sources = {s for s in open_sources if out[s] < bytes_by_source[s]}
        budget -= spent
        if spent == 0:
            break
    return out


def sample_texts(doc_paths: list[Path], cfg: TokenizerConfig) -> pl.DataFrame:
    """A seeded sample of documents: per source in hash-of-(seed, id) order up to its byte budget."""
    # Two passes, so memory holds the sample, not the corpus: sizes first (one file at a time), then the
    # texts of the chosen documents only.
    sizes = pl.concat(
        [
            pl.scan_parquet(p).select("id", "source", pl.col("text").str.len_bytes().alias("_bytes")).collect()
            for p in doc_paths
        ],
        how="vertical",
    )
    sizes = sizes.with_columns(stable_rank_key(sizes["id"], cfg.seed).alias("_order")).sort(["_order", "id"])
    have = {s: int(b) for s, b in sizes.group_by("source").agg(pl.col("_bytes").sum()).iter_rows()}
    budgets = pl.DataFrame({"source": list(have), "_budget": [source_budgets(have, cfg)[s] for s in have]})
    sizes = sizes.join(budgets, on="source", how="left", maintain_order="left")
    before = pl.col("_bytes").cum_sum().over("source") - pl.col("_bytes")
    chosen = sizes.filter(before < pl.col("_budget")).select("id", "source")
    texts = pl.concat(
        [pl.scan_parquet(p).select("id", "text").join(chosen.lazy(), on="id", how="semi").collect() for p in doc_paths],
        how="vertical",
    )
    return chosen.join(texts, on="id", how="left", maintain_order="left")


def train_tokenizer(doc_paths: list[Path], out_dir: Path, cfg: TokenizerConfig) -> dict:
    """Train on the sample; write ``tokenizer.model``, ``tokenizer.vocab``, ``tokenizer_info.json``, HF files."""
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
        # No invented leading space: decode(encode(x)) == x, and HF's Llama tokenizer gives the same ids.
        add_dummy_prefix=False,
        allow_whitespace_only_pieces=True,
        max_sentence_length=cfg.max_line_chars * 4,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=3,
        user_defined_symbols=cfg.user_defined_symbols,
        control_symbols=cfg.control_symbols,
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
        "sample_bytes_by_source": {
            s: int(b)
            for s, b in sample.group_by("source").agg(pl.col("text").str.len_bytes().sum()).sort("source").iter_rows()
        },
        "seed": cfg.seed,
    }
    atomic_write_bytes(out_dir / "tokenizer_info.json", json.dumps(info, indent=2, sort_keys=True).encode())
    write_hf_files(out_dir, sp)
    return info


def write_hf_files(out_dir: Path, sp: spm.SentencePieceProcessor) -> None:
    """Make ``out_dir`` loadable by Hugging Face ``LlamaTokenizer`` (``AutoTokenizer.from_pretrained``).

    ``legacy=False`` and no automatic BOS/EOS make its ids equal sentencepiece's own.
    """
    specials = {
        "bos_token": sp.id_to_piece(sp.bos_id()),
        "eos_token": sp.id_to_piece(sp.eos_id()),
        "unk_token": sp.id_to_piece(sp.unk_id()),
        "pad_token": sp.id_to_piece(sp.pad_id()),
    }
    config = {
        "tokenizer_class": "LlamaTokenizer",
        "model_max_length": 1_000_000,
        "add_bos_token": False,
        "add_eos_token": False,
        "legacy": False,
        "add_prefix_space": False,
        "clean_up_tokenization_spaces": False,
        "spaces_between_special_tokens": False,
        "sp_model_kwargs": {},
        **specials,
    }
    atomic_write_bytes(out_dir / "tokenizer_config.json", json.dumps(config, indent=2).encode())
    atomic_write_bytes(out_dir / "special_tokens_map.json", json.dumps(specials, indent=2).encode())


def load_tokenizer(tok_dir: Path) -> spm.SentencePieceProcessor:
    return spm.SentencePieceProcessor(model_file=str(tok_dir / "tokenizer.model"))
