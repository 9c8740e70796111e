"""Incremental runs and big files: what a grown corpus recomputes, and one big file read in parallel.

Part 1: the books, code and web pages of ../shared/data, less one file in twenty (chosen by a hash of
its name), are curated (normalize, langid, filter, dedup, pii) into a fresh cache; then the held-back
files are added and the run repeated on the same cache. Printed: seconds and units computed per
stage for the first run, the grown rerun and a cold run of the grown corpus.

Part 2: one JSONL file of about --big-mb MB (web text of ../shared/data, repeated) is ingested as one
unit, then as the parts ``pipeline.ingest.grouping`` cuts it into, those run by --workers processes
(as Dask workers would run them). Printed: seconds for each, and that both give the same documents.

Stages run outside Prefect (plain calls of the same tasks), so the figures are the stages' own.

    python benchmarks/incremental.py
    python benchmarks/incremental.py --big-mb 400 --workers 2
"""

from __future__ import annotations

import sys
from pathlib import Path

# keep benchmarks/ off the import path, so no script here can shadow a standard-library module
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import gzip  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402

import xxhash  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data"
STAGES = ("normalize", "langid", "filter", "dedup", "pii")


def _held_back(name: str) -> bool:
    return xxhash.xxh3_64_intdigest(name.encode()) % 20 == 0


def _copy_corpus(dest: Path, held: bool) -> int:
    """Copy books, code and web into ``dest`` (the held-back files too when ``held``); files copied."""
    n = 0
    for sub in ("books", "code", "web"):
        for path in sorted((DATA / sub).rglob("*")):
            rel = path.relative_to(DATA)
            if not path.is_file() or path.name in ("manifest.jsonl",) or (_held_back(str(rel)) and not held):
                continue
            target = dest / rel
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
                n += 1
    return n


def _curate(cache: Path, corpus: Path, shard_mb: float) -> dict[str, tuple[float, int, int]]:
    """Per stage: (seconds, units computed, units)."""
    from flows.executor import Executor
    from flows.stages import STAGES as REGISTRY
    from pipeline.ingest import IngestConfig

    executor = Executor(cache)
    start = time.perf_counter()
    inputs = [[None, str(corpus / sub)] for sub in ("books", "code", "web")]
    state, run, _ = executor.ingest(inputs, IngestConfig(shard_mb=shard_mb).model_dump(mode="json"))
    runs = {"ingest": (time.perf_counter() - start, run)}
    for name in STAGES:
        spec = {"name": name, "params": REGISTRY[name].config_cls()().model_dump(mode="json")}
        t0 = time.perf_counter()
        stage_run = executor.stage(spec, state)
        runs[name] = (time.perf_counter() - t0, stage_run)
    return {n: (s, sum(not r.get("cached") for r in run.refs), len(run.refs)) for n, (s, run) in runs.items()}


def _print_runs(title: str, runs: dict[str, tuple[float, int, int]]) -> None:
    total = sum(s for s, _, _ in runs.values())
    cells = "  ".join(f"{n} {s:.1f}s {c}/{u}" for n, (s, c, u) in runs.items())
    print(f"{title:<22} {total:7.1f}s   {cells}")


def incremental(work: Path, shard_mb: float) -> None:
    corpus = work / "corpus"
    first_files = _copy_corpus(corpus, held=False)
    _print_runs(f"first ({first_files} files)", _curate(work / "cache", corpus, shard_mb))
    added = _copy_corpus(corpus, held=True)
    _print_runs(f"grown (+{added} files)", _curate(work / "cache", corpus, shard_mb))
    _print_runs("cold, grown corpus", _curate(work / "cold-cache", corpus, shard_mb))


def _big_file(path: Path, mb: int) -> None:
    texts = []
    for f in sorted((DATA / "web").glob("*.jsonl.gz")):
        with gzip.open(f, "rt") as fh:
            for line in fh:
                rec = json.loads(line)
                text = rec.get("expected_text") or rec.get("text") or ""
                if text:
                    texts.append(text)
    with open(path, "w") as out:
        written, k = 0, 0
        while written < mb * 1_000_000:
            line = json.dumps({"text": f"copy {k // len(texts)}. {texts[k % len(texts)]}"}) + "\n"
            out.write(line)
            written += len(line)
            k += 1


def _warm(_: int) -> None:
    import flows.tasks  # noqa: F401
    import pipeline.ingest  # noqa: F401

    time.sleep(0.2)  # so every worker takes one


def _ingest_group(args: tuple) -> tuple[int, str]:
    from flows import tasks

    index, files, params, cache = args
    ref = tasks.ingest_shard.fn(index, files, params, cache)
    return ref["docs_out"], ref["dir"]


def big_file(work: Path, mb: int, workers: int) -> None:
    import polars as pl

    from pipeline.ingest import IngestConfig, discover
    from pipeline.ingest.grouping import group_files

    path = work / "big.jsonl"
    _big_file(path, mb)
    files, _ = discover([(None, str(path))])
    params = IngestConfig().model_dump(mode="json")
    shard_bytes = int(IngestConfig().shard_mb * 1_000_000)
    start = time.perf_counter()
    whole_docs, whole_dir = _ingest_group((0, [files[0].to_dict()], params, str(work / "cache-whole")))
    whole_s = time.perf_counter() - start
    groups = group_files(files, shard_bytes, 2000)
    args = [(i, [f.to_dict() for f in g], params, str(work / "cache-parts")) for i, g in enumerate(groups)]
    # spawned, not forked: a fork of a process running polars' thread pool can deadlock. Workers are warmed
    # (modules imported) before the clock starts, as a Dask worker would be.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(_warm, range(workers * 4)))
        start = time.perf_counter()
        parts = list(pool.map(_ingest_group, args))
        parts_s = time.perf_counter() - start
    ids = pl.concat([pl.read_parquet(Path(d) / "docs.parquet", columns=["id", "text"]) for _, d in parts]).sort("id")
    same = ids.equals(pl.read_parquet(Path(whole_dir) / "docs.parquet", columns=["id", "text"]).sort("id"))
    size = path.stat().st_size / 1e6
    print(
        f"big file {size:.0f} MB: one unit {whole_s:.1f}s ({whole_docs} docs); {len(groups)} parts on {workers} "
        f"processes {parts_s:.1f}s ({sum(d for d, _ in parts)} docs); speed-up {whole_s / parts_s:.2f}x; "
        f"same documents: {same}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    ap.add_argument("--shard-mb", type=float, default=2.0)
    ap.add_argument("--big-mb", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--only", choices=("incremental", "big"), default=None, help="run one part")
    args = ap.parse_args()
    if not DATA.is_dir():
        sys.exit(f"needs {DATA} (the shared data set)")
    work = args.work or Path(tempfile.mkdtemp(prefix="refinery-incremental-"))
    try:
        if args.only in (None, "incremental"):
            incremental(work / "incremental", args.shard_mb)
        if args.only in (None, "big"):
            big_file(work, args.big_mb, args.workers)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
