"""Per-stage throughput of the curation stages on real text, in one process (no Prefect overhead).

Documents: the books (split into ~20 kB parts) and code files of ../shared/data, read by our own
ingest. Prints docs/s and MB/s for each stage in recipe order.

Run: .venv/bin/python benchmarks/stages.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import polars as pl  # noqa: E402

from pipeline.dedup.stage import DedupConfig, apply_duplicates, find_duplicates, signatures  # noqa: E402
from pipeline.filters.stage import FilterConfig, apply_filters  # noqa: E402
from pipeline.ingest import IngestConfig, discover, read_file  # noqa: E402
from pipeline.langid.stage import LangIdConfig, identify  # noqa: E402
from pipeline.normalize import NormalizeConfig, normalize  # noqa: E402
from pipeline.pii.config import PiiConfig  # noqa: E402
from pipeline.pii.stage import remove_pii  # noqa: E402
from pipeline.shards import ShardsConfig, tokenize_docs  # noqa: E402
from pipeline.tokenizer.training import TokenizerConfig, train_tokenizer  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def load() -> pl.DataFrame:
    files, _ = discover([(None, str(DATA / "books")), (None, str(DATA / "code"))])
    docs = pl.concat([read_file(f, IngestConfig())[0] for f in files], how="vertical")
    # Books as ~20 kB parts so per-document costs are visible, as in a web crawl.
    books = docs.filter(pl.col("source") == "book")
    parts = (
        books.with_columns(pl.col("text").str.split("\n\n"))
        .explode("text")
        .with_columns((pl.col("text").str.len_chars().cum_sum().over("id") // 20_000).alias("_part"))
    )
    parts = (
        parts.group_by("id", "_part", maintain_order=True)
        .agg(pl.col("text").str.join("\n\n"), pl.exclude("text", "_part").first())
        .with_columns(pl.format("{}-{}", pl.col("id"), pl.col("_part")).alias("id"))
        .drop("_part")
    )
    return pl.concat([parts.select(docs.columns), docs.filter(pl.col("source") != "book")], how="vertical")


def timed(name: str, df: pl.DataFrame, fn):
    mb = df["text"].str.len_bytes().sum() / 1e6
    t0 = time.perf_counter()
    out = fn(df)
    dt = time.perf_counter() - t0
    rate = f"{df.height / dt:10,.0f} docs/s {mb / dt:7.2f} MB/s"
    print(f"  {name:<10} {df.height:>7,} docs {mb:8.1f} MB {dt:7.2f} s {rate}")
    return out


def main() -> None:
    if not DATA.is_dir():
        print(f"skipped: {DATA} not found")
        return
    df = load()
    print(f"stages on {df.height:,} documents ({df['text'].str.len_bytes().sum() / 1e6:.1f} MB) from ../shared/data")
    df = timed("normalize", df, lambda d: normalize(d, NormalizeConfig()).kept)
    df = timed("langid", df, lambda d: identify(d, LangIdConfig(keep=[])).kept)
    df = timed("filter", df, lambda d: apply_filters(d, FilterConfig()).kept)
    cfg = DedupConfig()
    df = timed("dedup", df, lambda d: apply_duplicates(d, find_duplicates(signatures(d, cfg), cfg)).kept)
    df = timed("pii", df, lambda d: remove_pii(d, PiiConfig()).kept)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "docs.parquet"
        df.write_parquet(path)
        timed("tokenizer", df, lambda d: train_tokenizer([path], Path(tmp) / "tok", TokenizerConfig()))
        timed("tokenize", df, lambda d: tokenize_docs(d, Path(tmp) / "tok", ShardsConfig()))


if __name__ == "__main__":
    main()
