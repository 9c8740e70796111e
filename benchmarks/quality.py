"""Quality classifier: ROC-AUC on DCLM's human-labelled pages (``../shared/data/quality``).

Scores every labelled page with the shipped classifier (``pipeline/models/quality.ftz``, trained by
``refinery train-quality`` on WikiText + books vs raw web pages; none of the labelled pages are in
its training data) and prints ROC-AUC, with two cheap references computed on the same pages: the
Gopher stop-word count and the mean word length. Also prints scoring throughput.

Run: .venv/bin/python benchmarks/quality.py [--model PATH]
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path

# replace the script folder on the path: a module there (tokenize.py) would shadow the stdlib one
sys.path[0] = str(Path(__file__).resolve().parents[1])

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from pipeline.filters.stage import FilterConfig, compute_stats  # noqa: E402
from pipeline.quality.classifier import DEFAULT_MODEL, score  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "quality"


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mann-Whitney U form (ties get half credit)."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    ranks = pl.Series(np.concatenate([pos, neg])).rank("average").to_numpy()
    u = ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2
    return float(u / (len(pos) * len(neg)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    args = ap.parse_args()
    files = sorted(DATA.glob("*.jsonl*")) if DATA.is_dir() else []
    if not files:
        print(f"skipped: no labelled data in {DATA}")
        return
    rows = []
    for f in files:
        with gzip.open(f, "rt", encoding="utf-8") if f.suffix == ".gz" else f.open() as fh:
            rows += [json.loads(line) for line in fh]
    df = pl.DataFrame(
        {"id": [str(i) for i in range(len(rows))], "text": [r["text"] for r in rows], "source": ["web"] * len(rows)}
    )
    labels = np.array([int(r["label"]) for r in rows])
    t = time.perf_counter()
    s = score(df, args.model)
    dt = time.perf_counter() - t
    meta_path = Path(args.model + ".json")
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    stats = compute_stats(df.with_columns(pl.lit(None, dtype=pl.String).alias("meta")), FilterConfig())
    print(f"DCLM human-labelled pages: {len(rows)} ({labels.sum()} positive, {(1 - labels).sum()} negative)")
    print(
        f"model: {args.model} ({Path(args.model).stat().st_size / 1e6:.2f} MB, training data sha256 "
        f"{meta.get('training_data_sha256', '?')[:16]}...)"
    )
    print(f"  fastText quality classifier ROC-AUC: {roc_auc(labels, s):.3f}")
    for col in ("gopher_stop_words", "gopher_mean_word_length"):
        print(f"  reference: {col:<24} ROC-AUC: {roc_auc(labels, stats[col].fill_null(0).to_numpy()):.3f}")
    mb = df["text"].str.len_bytes().sum() / 1e6
    print(f"  scoring: {len(rows) / dt:,.0f} docs/s, {mb / dt:.2f} MB/s")


if __name__ == "__main__":
    main()
