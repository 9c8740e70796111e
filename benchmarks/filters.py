"""Heuristic filters: ours vs datatrove on the same corpus, in one run.

Both run Gopher repetition + Gopher quality + C4 + FineWeb over the mixed ~20 MB benchmark corpus
built by ``../shared/bench/make_corpus.py`` (books, web, code, multilingual, wiki). datatrove runs
through ``../shared/bench/datatrove_filters.py`` (2 tasks, 2 workers, its own venv, built on first use
and timed separately). Ours runs in this process: read the JSONL, ``apply_filters`` in 1,000-document
batches spread over 2 worker processes (polars on one thread each; ``--workers 1`` runs one process
with polars on every core), write Parquet: the same read -> filter -> write work.

Agreement: every document is judged by both; overall keep/drop agreement, then per filter family over
the documents that reached datatrove's filter of that family (datatrove applies them in sequence).
Our configuration mirrors datatrove's defaults where they differ from the papers (see ``dt_config``).

Run: .venv/bin/python benchmarks/filters.py [--mb 20] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

# replace the script folder on the path: a module there (tokenize.py) would shadow the stdlib one
sys.path[0] = str(Path(__file__).resolve().parents[1])

import polars as pl  # noqa: E402

from pipeline.filters.stage import FilterConfig, apply_filters, compute_stats, rule_failures, rule_table  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO.parent / "shared" / "bench"
DATA = REPO.parent / "shared" / "data"
# datatrove's exclusion-writer folder name -> our rule family
DT_FAMILIES = {"gopher_rep": "gopher_repetition", "gopher_qual": "gopher_quality", "c4": "c4", "fineweb": "fineweb"}
TARGET_SPEEDUP, TARGET_AGREEMENT = 10.0, 0.99


def dt_config() -> FilterConfig:
    """Our four families with datatrove's default parameters where they differ from the papers."""
    return FilterConfig(
        families=["gopher_quality", "gopher_repetition", "c4", "fineweb"],
        apply_prose_to=["web"],  # datatrove judges every document as prose; the corpus is loaded as "web"
        definitions="datatrove",
        bullet_chars="•-",  # datatrove only counts these two bullets
        fineweb_max_dup_line_char_frac=0.01,  # datatrove default (the FineWeb paper's text gives 0.1)
        fineweb_min_line_punct_frac=0.12,
    )


def load(path: Path) -> pl.DataFrame:
    rows = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            rows.append((str(d["id"]), d["text"]))
    return pl.DataFrame(rows, schema={"id": pl.String, "text": pl.String}, orient="row").with_columns(
        pl.lit("web").alias("source"),
        pl.lit(None, dtype=pl.String).alias("url"),
        pl.col("id").alias("path"),
        pl.lit("{}").alias("meta"),
    )


class TreeCpu:
    """CPU seconds (user + system) of a process's descendants, sampled from /proc every ``interval``.

    Wall time swings with the shared machine's load; CPU time much less, so both tools are also timed
    in CPU seconds, the same way: every descendant's last-seen utime + stime, summed. (A process that
    exits between two samples loses its last ``interval`` of CPU, for either tool.)
    """

    def __init__(self, root: int, interval: float = 0.1) -> None:
        self.root, self.interval = root, interval
        self.seen: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._tick = os.sysconf("SC_CLK_TCK")

    def _children(self, pid: int) -> list[int]:
        out: list[int] = []
        for task in Path(f"/proc/{pid}/task").glob("*/children"):
            try:
                out += [int(c) for c in task.read_text().split()]
            except OSError:
                pass
        return out

    def _sample(self) -> None:
        todo = self._children(self.root)
        while todo:
            pid = todo.pop()
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            self.seen[pid] = (int(fields[11]) + int(fields[12])) / self._tick  # utime, stime
            todo += self._children(pid)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> TreeCpu:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._sample()
        self._stop.set()
        self._thread.join()

    @property
    def cpu_s(self) -> float:
        return sum(self.seen.values())


def _self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _filter_batch(args: tuple[pl.DataFrame, FilterConfig, str]) -> tuple[list[str], dict[str, int]]:
    batch, cfg, path = args
    res = apply_filters(batch, cfg)
    res.kept.write_parquet(f"{path}-kept.parquet")
    res.rejected.write_parquet(f"{path}-rejected.parquet")
    return res.kept["id"].to_list(), res.stats["dropped_by_rule"]


def run_ours(corpus: Path, out: Path, cfg: FilterConfig, batch: int = 1000, workers: int = 2) -> dict:
    """Read, filter in ``batch``-document shards over ``workers`` processes (as datatrove's 2 tasks on 2
    workers, and as the flow maps shards), write Parquet. Each worker runs polars on one thread."""
    t0, c0 = time.perf_counter(), _self_cpu()
    with TreeCpu(os.getpid()) as workers_cpu:
        df = load(corpus)
        results = _filter_all(df, out, cfg, batch, workers)
    wall = time.perf_counter() - t0
    cpu = _self_cpu() - c0 + workers_cpu.cpu_s
    kept_ids: list[str] = []
    dropped: dict[str, int] = {}
    for ids, drops in results:
        kept_ids += ids
        for k, v in drops.items():
            dropped[k] = dropped.get(k, 0) + v
    mb = df["text"].str.len_bytes().sum() / 1e6
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "docs_in": df.height,
        "docs_out": len(kept_ids),
        "mb_in": mb,
        "docs_per_s": df.height / wall,
        "mb_per_s": mb / wall,
        "kept": set(kept_ids),
        "dropped": dropped,
    }


def _filter_all(df: pl.DataFrame, out: Path, cfg: FilterConfig, batch: int, workers: int) -> list:
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(df.slice(i, batch), cfg, str(out / f"{i // batch:05d}")) for i in range(0, df.height, batch)]
    if workers > 1:
        import multiprocessing as mp

        os.environ["POLARS_MAX_THREADS"] = "1"  # read by the freshly spawned workers
        with mp.get_context("spawn").Pool(workers) as pool:
            results = pool.map(_filter_batch, jobs, chunksize=1)
    else:
        results = [_filter_batch(j) for j in jobs]
    return results


def run_datatrove(corpus: Path, workdir: Path) -> dict:
    cmd = [
        "python3",
        str(BENCH / "datatrove_filters.py"),
        "--input",
        str(corpus),
        "--workdir",
        str(workdir),
        "--save-removed",
    ]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # only the harness's descendants (the executor's workers, which do all the pipeline's work): its own
    # start-up and shard split are left out, in datatrove's favour
    with TreeCpu(proc.pid) as dt_cpu:
        stdout, stderr = proc.communicate()
    proc = subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)
    total = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"datatrove harness failed:\n{proc.stderr[-3000:]}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["harness_total_s"] = total  # includes a first-use venv build, if one happened
    res["cpu_s"] = dt_cpu.cpu_s
    res["venv_built"] = "creating venv" in proc.stderr
    removed: dict[str, set[str]] = {}
    for folder in DT_FAMILIES:
        ids: set[str] = set()
        for f in sorted((workdir / "removed" / folder).glob("*.jsonl*")):
            opener = gzip.open if f.suffix == ".gz" else open
            with opener(f, "rt", encoding="utf-8") as fh:
                ids |= {str(json.loads(line)["id"]) for line in fh}
        removed[folder] = ids
    res["removed"] = removed
    return res


def agreement(corpus: Path, cfg: FilterConfig, ours_kept: set[str], dt: dict) -> dict:
    df = load(corpus)
    fails = rule_failures(compute_stats(df, cfg), cfg)
    fam_of = {r["name"]: r["family"] for r in rule_table(cfg)}  # rule name -> its family, from the rule table
    fam_fail = {f: pl.any_horizontal([pl.col(r) for r in fails.columns if fam_of[r] == f]) for f in cfg.families}
    fam = pl.concat([df.select("id"), fails.select([e.alias(f) for f, e in fam_fail.items()])], how="horizontal")
    failed_rules = dict(
        zip(
            df["id"].to_list(),
            fails.select(
                pl.concat_list([pl.when(pl.col(r)).then(pl.lit(r)) for r in fails.columns]).list.drop_nulls().alias("r")
            )["r"].to_list(),
            strict=True,
        )
    )
    ids = fam["id"].to_list()
    dt_removed_all = set().union(*dt["removed"].values())
    dt_kept = set(ids) - dt_removed_all
    agree = sum((i in ours_kept) == (i in dt_kept) for i in ids) / len(ids)
    out = {
        "overall": agree,
        "both_keep": len(ours_kept & dt_kept),
        "only_ours_keep": len(ours_kept - dt_kept),
        "only_dt_keep": len(dt_kept - ours_kept),
        "families": {},
    }
    reached = set(ids)
    for folder, family in DT_FAMILIES.items():  # datatrove's order
        sub = fam.filter(pl.col("id").is_in(list(reached)))
        ours_fail = dict(zip(sub["id"].to_list(), sub[family].to_list(), strict=True))
        theirs = dt["removed"][folder]
        n = len(ours_fail)
        same = sum(v == (i in theirs) for i, v in ours_fail.items())
        out["families"][family] = {
            "docs": n,
            "agreement": same / max(n, 1),
            "ours_drop": sum(ours_fail.values()),
            "dt_drop": len(theirs & reached),
            "only_ours_drop": sum(v and i not in theirs for i, v in ours_fail.items()),
            "only_dt_drop": sum((not v) and i in theirs for i, v in ours_fail.items()),
            "disagreements": [
                (i, "refinery" if v else "datatrove", [r for r in failed_rules[i] if fam_of[r] == family])
                for i, v in ours_fail.items()
                if v != (i in theirs)
            ],
        }
        reached -= theirs
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=20)
    ap.add_argument("--workers", type=int, default=2, help="our worker processes (datatrove: 2 tasks, 2 workers)")
    ap.add_argument(
        "--dump-disagreements",
        type=Path,
        metavar="PATH",
        help="write the documents the tools judge differently (per family) as JSONL",
    )
    ap.add_argument(
        "--workdir",
        type=Path,
        default=Path(os.environ.get("BENCH_HOME", Path.home() / ".cache" / "refinery-bench")) / "filters",
    )
    args = ap.parse_args()
    if not DATA.is_dir() or not BENCH.is_dir():
        print(f"skipped: {DATA} or {BENCH} not found")
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    corpus = args.workdir / f"corpus-{args.mb:g}mb.jsonl.gz"
    if not corpus.exists():
        t = time.perf_counter()
        subprocess.run(
            ["python3", str(BENCH / "make_corpus.py"), "--mb", str(args.mb), "--out", str(corpus)],
            check=True,
            capture_output=True,
        )
        print(f"corpus built in {time.perf_counter() - t:.1f} s: {corpus}")
    cfg = dt_config()
    ours = run_ours(corpus, args.workdir / "ours", cfg, workers=args.workers)
    dt = run_datatrove(corpus, args.workdir / "datatrove")
    ag = agreement(corpus, cfg, ours["kept"], dt)

    mb = ours["mb_in"]
    print(f"corpus: {ours['docs_in']:,} docs, {mb:.1f} MB of text, {os.cpu_count()} cores")
    print(f"  {'tool':<10} {'wall s':>8} {'docs/s':>9} {'MB/s':>7} {'CPU s':>8} {'MB/CPU-s':>9} {'kept':>6}")
    for name, r in (("refinery", ours), ("datatrove", dt)):
        print(
            f"  {name:<10} {r['wall_s']:8.2f} {r['docs_per_s']:9.1f} {r['mb_per_s']:7.2f} {r['cpu_s']:8.1f} "
            f"{mb / r['cpu_s']:9.3f} {r['docs_out']:6d}"
        )
    speed, cpu_speed = dt["wall_s"] / ours["wall_s"], dt["cpu_s"] / ours["cpu_s"]
    print(f"  datatrove harness total {dt['harness_total_s']:.1f} s (venv built this run: {dt['venv_built']})")
    print(
        f"speed-up: {speed:.1f}x wall, {cpu_speed:.1f}x CPU time (target >= {TARGET_SPEEDUP:g}x) "
        f"{'OK' if min(speed, cpu_speed) >= TARGET_SPEEDUP else 'MISSED'}"
    )
    print(
        f"keep/drop agreement: {ag['overall']:.4f} (target >= {TARGET_AGREEMENT}) "
        f"{'OK' if ag['overall'] >= TARGET_AGREEMENT else 'MISSED'}; both keep {ag['both_keep']}, "
        f"only we keep {ag['only_ours_keep']}, only datatrove keeps {ag['only_dt_keep']}"
    )
    for fam, a in ag["families"].items():
        print(
            f"  {fam:<18} docs {a['docs']:5d} agreement {a['agreement']:.4f} drops ours {a['ours_drop']:4d} "
            f"datatrove {a['dt_drop']:4d} (only ours {a['only_ours_drop']}, only datatrove {a['only_dt_drop']})"
        )
    print("our drops by first failing rule:", json.dumps(ours["dropped"]))
    if args.dump_disagreements:
        n = dump_disagreements(args.dump_disagreements, ag)
        print(f"{n} disagreements written to {args.dump_disagreements}")


def dump_disagreements(path: Path, ag: dict) -> int:
    """One JSON line per (family, document) judged differently: who drops it and our failing rules."""
    rows = [
        {"family": fam, "id": i, "dropped_by": who, "our_rules": rules}
        for fam, a in ag["families"].items()
        for i, who, rules in a["disagreements"]
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return len(rows)


if __name__ == "__main__":
    main()
