"""Scale: the default recipe on 100 MB and 1 GB corpora, with time and peak memory per stage.

The corpora are made from ../shared/data by repetition with perturbation: copy 0 of every file is the
original, copy k > 0 has 10 % of its words (alphabetic tokens) swapped for other words of the same
document with seed k, so copies are neither exact nor near duplicates (5-gram Jaccard ≈ 0.4) and the
dedup stage has real work rather than deleting every copy. Text stays in its language and register, so
language ID and quality filters behave as on the original. WARC files (under 1 MB) go into copy 0 only.
Files are written uncompressed; a corpus's size is its bytes on disk.

Peak memory per stage is the process's peak resident set between the stage's start and end (Linux's
VmHWM, reset at each stage start through /proc/self/clear_refs); per-shard stages run 2 shards at a
time (one thread per core here). Corpora and runs go to --work (default: the system temp folder),
never into the repository.

    python benchmarks/scale.py                     # 100 MB and 1 GB
    python benchmarks/scale.py --sizes 100         # only 100 MB
"""

from __future__ import annotations

import sys
from pathlib import Path

# keep benchmarks/ off the import path, so no script here can shadow a standard-library module
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import gzip  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "data"
# The readers take these as they are; .wat holds no text and is left out.
TEXT_FIELDS = ("text", "content", "html")
SWAP = 0.10


def perturb(text: str, rng: np.random.Generator) -> str:
    """Swap ``SWAP`` of the alphabetic tokens for other alphabetic tokens of the same text."""
    tokens = text.split(" ")
    alpha = np.fromiter((t.isalpha() for t in tokens), dtype=bool, count=len(tokens))
    pool = np.flatnonzero(alpha)
    if len(pool) < 2:
        return text
    chosen = pool[rng.random(len(pool)) < SWAP]
    donors = pool[rng.integers(0, len(pool), size=len(chosen))]
    for i, j in zip(chosen.tolist(), donors.tolist(), strict=True):
        tokens[i] = tokens[j]
    return " ".join(tokens)


def _open_text(path: Path):
    return gzip.open(path, "rt", encoding="utf-8", errors="surrogateescape") if path.suffix == ".gz" else open(path)


def base_files(shared: Path) -> list[Path]:
    """Readable files of the shared data, interleaved across its folders (books, code, web, ...), so a
    corpus cut at any size holds every kind of input rather than the first folders only."""
    files = [p for p in sorted(shared.rglob("*")) if p.is_file() and not p.name.startswith(".")]
    by_folder: dict[str, list[Path]] = {}
    for p in files:
        name = p.name.lower()
        if name.endswith((".jsonl.gz", ".jsonl", ".txt.gz", ".txt")) or ".warc" in name or name.endswith(".arc.gz"):
            if ".wat" not in name and p.name != "manifest.jsonl":
                by_folder.setdefault(p.relative_to(shared).parts[0], []).append(p)
    keep = []
    for i in range(max((len(v) for v in by_folder.values()), default=0)):
        keep += [v[i] for _, v in sorted(by_folder.items()) if i < len(v)]
    return keep


def write_copy(src: Path, shared: Path, dst_root: Path, copy: int) -> int:
    """Write copy ``copy`` of ``src`` under ``dst_root``; returns the bytes written."""
    rel = src.relative_to(shared)
    is_archive = ".warc" in src.name or src.name.endswith(".arc.gz")
    if is_archive:
        if copy:
            return 0
        dst = dst_root / f"copy{copy:03d}" / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        return dst.stat().st_size
    dst = dst_root / f"copy{copy:03d}" / rel.with_name(rel.name.removesuffix(".gz"))
    dst.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(copy)
    with _open_text(src) as fin, open(dst, "w", encoding="utf-8", errors="surrogateescape") as fout:
        if ".jsonl" in src.name:
            for line in fin:
                if copy:
                    try:
                        rec = json.loads(line)
                    except ValueError:
                        fout.write(line)
                        continue
                    for k in TEXT_FIELDS:
                        if isinstance(rec.get(k), str):
                            rec[k] = perturb(rec[k], rng)
                    line = json.dumps(rec, ensure_ascii=False) + "\n"
                fout.write(line)
        else:
            text = fin.read()
            fout.write(perturb(text, rng) if copy else text)
    return dst.stat().st_size


def make_corpus(target_mb: int, out: Path, shared: Path) -> dict[str, Any]:
    """Copies of the shared data, file by file, until ``target_mb`` MB are written (reused if present)."""
    stamp = out / "corpus.json"
    if stamp.is_file():
        return json.loads(stamp.read_text())
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    files = base_files(shared)
    if not files:
        raise SystemExit(f"no input files under {shared}")
    target, total, copy, n = target_mb * 1_000_000, 0, 0, 0
    start = time.perf_counter()
    while total < target:
        for f in files:
            if total >= target:
                break
            written = write_copy(f, shared, out, copy)
            total += written
            n += bool(written)
        copy += 1
    info = {"mb": round(total / 1e6, 1), "files": n, "copies": copy, "seconds": round(time.perf_counter() - start, 1)}
    stamp.write_text(json.dumps(info))
    return info


# --- measuring --------------------------------------------------------------------------------------------


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class StageMeter:
    """A ``flows.progress.Progress`` sink that records each stage's peak resident memory.

    Resets the kernel's high-water mark at a stage's start where allowed; else samples RSS every 50 ms.
    """

    def __init__(self) -> None:
        self.peak_mb: dict[str, float] = {}
        self.start_mb: dict[str, float] = {}
        self.current: str | None = None
        self.can_reset = self._reset()
        self._sampled = 0
        self._stop = threading.Event()
        if not self.can_reset:
            threading.Thread(target=self._sample, daemon=True).start()

    @staticmethod
    def _reset() -> bool:
        try:
            Path("/proc/self/clear_refs").write_text("5")
            return True
        except OSError:
            return False

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self._sampled = max(self._sampled, _status_kb("VmRSS"))

    def start(self, stage: str, total: int) -> None:
        self.current = stage
        if self.can_reset:
            self._reset()
        self._sampled = _status_kb("VmRSS")
        self.start_mb[stage] = round(self._sampled / 1024, 1)

    def advance(self, stage: str, n: int = 1) -> None: ...

    def finish(self, stage: str, summary: dict) -> None:
        kb = _status_kb("VmHWM") if self.can_reset else self._sampled
        self.peak_mb[stage] = round(kb / 1024, 1)
        print(
            f"  {stage} done: {summary['seconds']:.1f} s, peak {self.peak_mb[stage]:.0f} MB",
            file=sys.stderr,
            flush=True,
        )


def run_recipe(corpus: Path, out: Path, recipe: str, meter: StageMeter, without: set[str]) -> dict[str, Any]:
    import flows  # noqa: F401  (Prefect environment defaults)
    from flows import progress
    from flows.curate import curate
    from flows.recipe import load_recipe

    progress.set_progress(meter)
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    rec = load_recipe(recipe).as_dict()
    rec["stages"] = [s for s in rec["stages"] if s["name"] not in without]
    manifest = curate(rec, [[None, str(corpus)]], str(out), None)
    manifest["wall_seconds"] = round(time.perf_counter() - start, 1)
    return manifest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="100,1000", help="corpus sizes in MB, comma-separated")
    ap.add_argument("--recipe", default="default")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "refinery-scale")
    ap.add_argument("--shared", type=Path, default=SHARED)
    ap.add_argument("--price-per-core-hour", type=float, default=0.045, help="USD; on-demand x86 vCPU-hour")
    ap.add_argument("--without", default="", help="stages to leave out, e.g. train,report (fixed-cost stages)")
    ap.add_argument("--keep-runs", action="store_true", help="keep the run folders (corpora are always kept)")
    args = ap.parse_args()
    if not args.shared.is_dir():
        print(f"skipped: {args.shared} is not present")
        return
    os.environ.setdefault("PREFECT_HOME", str(args.work / "prefect"))
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    cores = os.cpu_count() or 1
    results = []
    for mb in [int(s) for s in args.sizes.split(",") if s]:
        corpus_dir = args.work / f"corpus-{mb}mb"
        info = make_corpus(mb, corpus_dir, args.shared)
        print(f"\n== corpus {info['mb']} MB: {info['files']} files, {info['copies']} copies "
              f"(generated in {info['seconds']} s)", flush=True)  # fmt: skip
        meter = StageMeter()
        without = {w for w in args.without.split(",") if w}
        manifest = run_recipe(corpus_dir, args.work / f"run-{mb}mb", args.recipe, meter, without)
        rows = []
        # "start MB": resident memory when the stage began; "peak MB" minus it is what the stage itself added.
        print(
            f"{'stage':<10} {'docs in':>10} {'docs out':>10} {'seconds':>9} {'MB/s':>7} {'start MB':>8} {'peak MB':>8}"
        )
        for s in manifest["stages"]:
            mbps = info["mb"] / s["seconds"] if s["seconds"] else float("inf")
            peak = meter.peak_mb.get(s["name"], float("nan"))
            start_mb = meter.start_mb.get(s["name"], float("nan"))
            rows.append(
                {**{k: s[k] for k in ("name", "docs_in", "docs_out", "seconds")}, "start_mb": start_mb, "peak_mb": peak}
            )
            print(f"{s['name']:<10} {s['docs_in']:>10,} {s['docs_out']:>10,} {s['seconds']:>9.1f} "
                  f"{mbps:>7.2f} {start_mb:>8.0f} {peak:>8.0f}")  # fmt: skip
        print(f"{'total':<10} {'':>10} {'':>10} {manifest['wall_seconds']:>9.1f}   highest stage peak "
              f"{max(meter.peak_mb.values()):.0f} MB", flush=True)  # fmt: skip
        results.append({"corpus": info, "stages": rows, "wall_seconds": manifest["wall_seconds"]})
        if not args.keep_runs:
            shutil.rmtree(args.work / f"run-{mb}mb", ignore_errors=True)
    (args.work / "scale-results.json").write_text(json.dumps(results, indent=1))
    _projection(results, cores, args.price_per_core_hour)


# Stages whose cost does not grow with the corpus: the tokenizer trains on a fixed-size sample
# (`sample_mb`), training runs a fixed number of steps, the report reads lengths only.
FIXED = {"tokenizer", "train", "report"}


def _projection(results: list[dict[str, Any]], cores: int, price: float) -> None:
    big = max(results, key=lambda r: r["corpus"]["mb"])
    if not big["stages"]:
        return
    mb = big["corpus"]["mb"]
    linear = sum(s["seconds"] for s in big["stages"] if s["name"] not in FIXED)
    fixed = sum(s["seconds"] for s in big["stages"] if s["name"] in FIXED)
    core_h_per_tb = linear * cores / 3600 * (1e6 / mb)
    print(f"\n== projection from the {mb} MB run on {cores} cores")
    print(f"per-shard and dedup stages: {linear:.0f} s -> {mb / linear:.2f} MB/s on this machine, "
          f"{core_h_per_tb:,.0f} core-hours per TB")  # fmt: skip
    print(f"fixed-cost stages (tokenizer sample, training, report): {fixed:.0f} s, independent of corpus size")
    print(f"at ${price}/core-hour: ${core_h_per_tb * price:,.0f} per TB of input (compute only; assumes the map "
          "scales linearly over Dask workers sharing one file system, and the dedup cluster step stays a "
          "small share: it is O(documents), one band at a time)")  # fmt: skip


if __name__ == "__main__":
    main()
