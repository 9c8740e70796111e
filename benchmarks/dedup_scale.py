"""Dedup scaling: time and peak RSS for 10k, 100k and 1M synthetic documents.

Each size runs in its own process, the way the flow runs it: documents are generated shard by shard
(``--shard-docs``, the same shard size at every size, so per-shard memory is equal and differences
come from the number of documents), each shard's signatures are written to Parquet, the global step
reads those files one at a time, as flows/tasks.py does (``--lazy``: one LazyFrame scanning them
all) and the filter step is applied shard by shard. 5% of documents are near copies (a few
words changed) of another one, so clusters exist at every size.

Peak RSS is printed for the whole run and for each phase (Linux: the high-water mark is reset
between phases through /proc/self/clear_refs); RSS that a phase's allocator keeps after it counts
in the next phase's peak. "RSS at start" is the process before any work (interpreter, polars,
numpy, datasketch). The last lines give the whole-run peak's growth per document between sizes.

    python benchmarks/dedup_scale.py [--sizes 10000,100000,1000000] [--words 80] [--memory-mb 64]
"""

from __future__ import annotations

import sys
from pathlib import Path

# keep benchmarks/ off the import path, so no script here can shadow a standard-library module
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.dedup.stage import DedupConfig, apply_duplicates, find_duplicates, signatures  # noqa: E402

_VOCAB = np.array([f"w{i:05d}" for i in range(30_000)])


def _shard(index: int, n: int, words: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng([seed, index])
    toks = rng.integers(0, len(_VOCAB), size=(n, words))
    dup = rng.random(n) < 0.05  # near copy of the previous document in the shard
    src = np.maximum(np.arange(n) - 1, 0)
    toks[dup] = toks[src[dup]]
    cols = rng.integers(0, words, size=(n, 2))
    toks[dup, cols[dup, 0]] = rng.integers(0, len(_VOCAB), size=int(dup.sum()))
    texts = pl.DataFrame({"w": _VOCAB[toks].tolist()}).select(pl.col("w").list.join(" "))["w"]
    return pl.DataFrame(
        {
            "id": [f"s{index:04d}-{i:07d}" for i in range(n)],
            "text": texts,
            "source": ["web"] * n,
        }
    )


def generate(n_docs: int, words: int, shard_docs: int, seed: int, folder: Path) -> None:
    """Write the document shards (in its own process, so generation does not count in the peak)."""
    for i in range((n_docs + shard_docs - 1) // shard_docs):
        _shard(i, min(shard_docs, n_docs - i * shard_docs), words, seed).write_parquet(folder / f"docs-{i:04d}.parquet")


def _status_mb(field: str) -> float | None:
    """A /proc/self/status figure (VmHWM, VmRSS) in MB, None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _phase_peak() -> float:
    """Peak RSS (MB) since the last call, then reset the high-water mark for the next phase."""
    peak = _status_mb("VmHWM")
    if peak is None:  # no /proc: the process-lifetime peak
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    return peak


def run_size(folder: Path, memory_mb: int | None, lazy: bool) -> dict:
    cfg = DedupConfig() if memory_mb is None else DedupConfig(memory_mb=memory_mb)
    docs = sorted(folder.glob("docs-*.parquet"))
    start_rss = _status_mb("VmRSS") or 0.0
    _phase_peak()
    t0 = time.perf_counter()
    text_bytes = n_docs = 0
    paths = []
    for i, d in enumerate(docs):
        df = pl.read_parquet(d)
        text_bytes += int(df["text"].str.len_bytes().sum())
        n_docs += df.height
        p = folder / f"sig-{i:04d}.parquet"
        signatures(df, cfg).write_parquet(p)
        paths.append(p)
        del df
    t1 = time.perf_counter()
    peak_sig = _phase_peak()
    removed = find_duplicates(pl.concat([pl.scan_parquet(p) for p in paths]) if lazy else paths, cfg)
    t2 = time.perf_counter()
    peak_clusters = _phase_peak()
    kept = sum(apply_duplicates(pl.read_parquet(d), removed).kept.height for d in docs)
    t3 = time.perf_counter()
    peak_filter = _phase_peak()
    return {
        "docs": n_docs,
        "text_mb": round(text_bytes / 1e6, 1),
        "signatures_s": round(t1 - t0, 2),
        "clusters_s": round(t2 - t1, 2),
        "filter_s": round(t3 - t2, 2),
        "total_s": round(t3 - t0, 2),
        "mb_per_s": round(text_bytes / 1e6 / (t3 - t0), 2),
        "removed": removed.height,
        "kept": kept,
        "signature_files_mb": round(sum(p.stat().st_size for p in paths) / 1e6, 1),
        "start_rss_mb": round(start_rss, 1),
        "peak_rss_signatures_mb": round(peak_sig, 1),
        "peak_rss_clusters_mb": round(peak_clusters, 1),
        "peak_rss_filter_mb": round(peak_filter, 1),
        "peak_rss_mb": round(max(peak_sig, peak_clusters, peak_filter), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--words", type=int, default=80)
    ap.add_argument("--shard-docs", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--memory-mb", type=int, default=None, help="DedupConfig.memory_mb (default: its default)")
    ap.add_argument("--lazy", action="store_true", help="pass one LazyFrame over the signature files")
    ap.add_argument("--gen", type=int, default=None, help=argparse.SUPPRESS)  # child: generate
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)  # child: dedup one folder
    args = ap.parse_args()
    if args.one is not None:
        if args.gen is not None:
            generate(args.gen, args.words, args.shard_docs, args.seed, Path(args.one))
        else:
            print(json.dumps(run_size(Path(args.one), args.memory_mb, args.lazy)))
        return
    print(
        "docs | text MB | signatures s | clusters s | filter s | total s | MB/s | removed | sig files MB | "
        "RSS at start MB | peak RSS MB: signatures / clusters / filter / whole run"
    )
    peaks: dict[int, float] = {}
    for n in [int(x) for x in args.sizes.split(",")]:
        with tempfile.TemporaryDirectory(prefix="refinery-dedup-scale-") as tmp:
            gen = [sys.executable, __file__, "--one", tmp, "--gen", str(n), "--words", str(args.words)]
            subprocess.run([*gen, "--shard-docs", str(args.shard_docs), "--seed", str(args.seed)], check=True)
            one = [sys.executable, __file__, "--one", tmp]
            if args.memory_mb is not None:
                one += ["--memory-mb", str(args.memory_mb)]
            if args.lazy:
                one.append("--lazy")
            run = subprocess.run(one, capture_output=True, text=True, check=True)
        out = run.stdout.strip().splitlines()[-1]
        r = json.loads(out)
        print(
            f"{r['docs']} | {r['text_mb']} | {r['signatures_s']} | {r['clusters_s']} | {r['filter_s']} | "
            f"{r['total_s']} | {r['mb_per_s']} | {r['removed']} | {r['signature_files_mb']} | {r['start_rss_mb']} | "
            f"{r['peak_rss_signatures_mb']} / {r['peak_rss_clusters_mb']} / {r['peak_rss_filter_mb']} / "
            f"{r['peak_rss_mb']}",
            flush=True,
        )
        peaks[r["docs"]] = r["peak_rss_mb"]
    sizes = sorted(peaks)
    pairs = list(zip(sizes, sizes[1:], strict=False))
    if len(sizes) > 2:
        pairs.append((sizes[0], sizes[-1]))
    for lo, hi in pairs:
        grow = peaks[hi] - peaks[lo]
        print(
            f"peak RSS growth {lo} -> {hi} documents: {grow:.1f} MB, {grow * 2**20 / (hi - lo):.0f} bytes per document"
        )


if __name__ == "__main__":
    main()
