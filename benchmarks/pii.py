"""PII removal speed: Refinery's candidate-filtered pass against naive presidio on the same real text.

Run: .venv/bin/python benchmarks/pii.py [--mb 2]   (needs ../shared/data/books)
"""

from __future__ import annotations

import argparse
import gzip
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import polars as pl  # noqa: E402

from pipeline.pii import PiiConfig, get_analyzer, remove_pii  # noqa: E402

BOOKS = Path(__file__).resolve().parents[2] / "shared" / "data" / "books"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=float, default=2.0, help="megabytes of book text to process")
    args = parser.parse_args()
    if not BOOKS.is_dir():
        print(f"skipped: {BOOKS} not found")
        return
    texts: list[str] = []
    for path in sorted(BOOKS.glob("*.txt.gz")):
        texts.append(gzip.open(path, "rt", encoding="utf-8", errors="replace").read())
        if sum(len(t.encode()) for t in texts) >= args.mb * 1e6:
            break
    mb = sum(len(t.encode()) for t in texts) / 1e6
    n = len(texts)
    df = pl.DataFrame({"id": [str(i) for i in range(n)], "text": texts, "source": ["book"] * n,
                       "url": [None] * n, "path": ["p"] * n, "meta": ["{}"] * n})
    cfg = PiiConfig()
    analyzer = get_analyzer(cfg)
    remove_pii(df.head(1), cfg)  # warm up regexes and recognizers

    t0 = time.perf_counter()
    res = remove_pii(df, cfg)
    ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    naive_hits = sum(len(analyzer.analyze(t, language="en", entities=cfg.entities)) for t in texts)
    naive = time.perf_counter() - t0
    hits = sum(res.stats["counts"].values())
    print(f"pii: {mb:.2f} MB of books, {n} docs")
    print(f"  refinery remove_pii : {mb / ours:8.2f} MB/s  ({hits} replacements)")
    print(f"  naive presidio      : {mb / naive:8.2f} MB/s  ({naive_hits} findings)")
    print(f"  speed-up            : {naive / ours:8.1f}x")


if __name__ == "__main__":
    main()
