"""Tokenization throughput: sentencepiece training and parallel encoding into token-shard columns.

Trains a 32k BPE tokenizer on a 20 MB sample of ../shared/data books and code, then tokenizes the
whole set with `pipeline.shards.tokenize_docs` (all cores) and prints MB/s, plus the held-out
compression figures beside the offline cl100k_base reference.

Run: .venv/bin/python benchmarks/tokenization.py
(Not named tokenize.py: that would shadow the standard library module for every script in this folder.)
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import polars as pl  # noqa: E402

from pipeline.ingest import IngestConfig, discover, read_file  # noqa: E402
from pipeline.shards import ShardsConfig, tokenize_docs  # noqa: E402
from pipeline.tokenizer.metrics import tokenizer_metrics  # noqa: E402
from pipeline.tokenizer.training import TokenizerConfig, train_tokenizer  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    if not DATA.is_dir():
        print(f"skipped: {DATA} not found")
        return
    files, _ = discover([(None, str(DATA / "books")), (None, str(DATA / "code"))])
    docs = pl.concat([read_file(f, IngestConfig())[0] for f in files], how="diagonal_relaxed")
    docs = docs.select("id", "source", "text")
    held_out = docs.filter(pl.col("id").str.ends_with("0"))
    mb = docs["text"].str.len_bytes().sum() / 1e6
    threads = os.cpu_count() or 2
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "docs.parquet"
        docs.filter(~pl.col("id").str.ends_with("0")).write_parquet(path)
        t0 = time.perf_counter()
        info = train_tokenizer(
            [path], Path(tmp) / "tok", TokenizerConfig(vocab_size=32000, sample_mb=20, threads=threads)
        )
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = tokenize_docs(docs, Path(tmp) / "tok", ShardsConfig(threads=threads))
        enc_s = time.perf_counter() - t0
        metrics = tokenizer_metrics(held_out, Path(tmp) / "tok", threads)
    print(
        f"tokenizer: BPE vocab {info['vocab_size']:,} trained on {info['sample_bytes'] / 1e6:.1f} MB in {train_s:.1f} s"
    )
    print(
        f"tokenize : {docs.height:,} docs, {mb:.1f} MB, {out['n_tokens'].sum():,} tokens in {enc_s:.1f} s "
        f"= {mb / enc_s:.2f} MB/s on {threads} threads (target >= 4 MB/s on 2 cores)"
    )
    print(f"held-out : vocabulary use {metrics['vocab_used']:.1%}; reference {metrics['reference']}")
    for src, m in [*metrics["by_source"].items(), ("all", metrics["all"])]:
        ref = ""
        if "reference_tokens" in m:
            ref = f"  reference {m['reference_bytes_per_token']:.2f} bytes/token, "
            ref += f"{m['reference_tokens_per_word']:.2f} tokens/word"
        print(f"  {src:<5} {m['bytes_per_token']:.2f} bytes/token, {m['tokens_per_word']:.2f} tokens/word{ref}")


if __name__ == "__main__":
    main()
