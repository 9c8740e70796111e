"""Prefect tasks: each runs one unit of work over paths and returns a ``UnitRef``.

Large data never travels through Prefect, only these small typed dicts. ``run_unit`` is the one
place a unit is looked up, computed into a staging folder and committed.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any, TypedDict

import polars as pl
import xxhash
from prefect import task
from prefect.tasks import exponential_backoff

from flows.cache import WorkUnit, file_fingerprint, make_key, unit_code
from flows.progress import TrainingProgress, progress, training_line
from flows.stages import STAGES
from pipeline.schema import REJECTED_SCHEMA, empty_rejected

# Errors worth retrying: the file system or network hiccupped (NFS/object-store mounts, a Dask worker's
# connection). A bug or bad config fails the same way each time, so it fails at once.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (OSError, TimeoutError)
RETRIES = 3


def is_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry only transient I/O failures."""
    try:
        state.result()
    except TRANSIENT_ERRORS:
        return True
    except BaseException:  # noqa: BLE001 - any other failure is deterministic: no retry
        return False
    return False


def result_key(context: Any, parameters: dict[str, Any]) -> str:
    """A key unique to the task run: Prefect writes the result record under it but never serves it as a
    cache hit, because our own content-keyed cache (flows.cache) decides what reruns."""
    return f"refinery-{context.task_run.id}"


# Results are persisted as JSON (never pickle) so the UI and API show each task's figures; they are
# small reference dicts.
# Retries back off exponentially (2, 4, 8 s, with jitter) on transient I/O errors only. Tags let an
# operator cap parallel heavy work: `prefect concurrency-limit create refinery-heavy 1`.
TASK_OPTS: dict[str, Any] = {
    "cache_key_fn": result_key,
    "persist_result": True,
    "result_serializer": "json",
    "retries": RETRIES,
    "retry_delay_seconds": exponential_backoff(backoff_factor=2),
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": is_transient,
    "tags": ["refinery"],
}
HEAVY_OPTS: dict[str, Any] = {**TASK_OPTS, "tags": ["refinery", "refinery-heavy"]}


class UnitRef(TypedDict, total=False):
    """What a task returns about its unit of work: where it lives and its figures, never its data."""

    step: str  # the kind of unit: a stage name or a global step ("dedup-clusters", "tokenizer", ...)
    key: str  # content key: code version, config and inputs' keys (flows.cache.make_key)
    dir: str  # cache/<step>/<key>/, holding the unit's files and done.json
    index: int  # the shard's position in the run, -1 for a global step
    cached: bool  # found done, not computed by this run
    docs_in: int
    docs_out: int
    rejected: int
    seconds: float
    stats: dict[str, Any]


def _ref(unit: WorkUnit, index: int, cached: bool) -> UnitRef:
    info = unit.info()
    return UnitRef(step=unit.step, key=unit.key, dir=str(unit.dir), index=index, cached=cached, **info)


def run_unit(cache_dir: str, step: str, key: str, index: int, compute: Callable[[Path], dict[str, Any]]) -> UnitRef:
    """The work-unit pattern, once: the unit ``cache_dir/step/key`` if done, else ``compute(staging)``
    (which writes the unit's files into ``staging`` and returns its figures), committed atomically."""
    unit = WorkUnit(Path(cache_dir), step, key)
    if unit.done:
        return _ref(unit, index, cached=True)
    staging = unit.staging()
    start = time.perf_counter()
    try:
        info = compute(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    info.setdefault("seconds", round(time.perf_counter() - start, 3))
    unit.commit(staging, info)
    return _ref(unit, index, cached=False)


def _config(stage: str, params: dict[str, Any]):
    return STAGES[stage].config_cls()(**params)


def _stage_modules(stage: str) -> tuple[str, ...]:
    """The modules a registered stage runs: its function's and its config's."""
    info = STAGES[stage]
    return tuple({path.split(":")[0] for path in (info.func_path, info.config_path) if path})


def write_docs(
    staging: Path, step: str, index: int, kept: pl.DataFrame, rejected: pl.DataFrame, docs_in: int, stats: dict
) -> dict[str, Any]:
    """A document unit's files (``docs.parquet``, ``rejected.parquet``) and figures, after checking that
    every document in is kept or rejected."""
    if kept.height + rejected.height != docs_in:
        raise RuntimeError(
            f"{step}: accounting broken on shard {index}: {docs_in} in, {kept.height} kept + {rejected.height} rejected"
        )
    kept.write_parquet(staging / "docs.parquet", compression="zstd")
    rejected.select(list(REJECTED_SCHEMA)).write_parquet(staging / "rejected.parquet", compression="zstd")
    return {"docs_in": docs_in, "docs_out": kept.height, "rejected": rejected.height, "stats": stats}


def read_docs(ref: UnitRef) -> pl.DataFrame:
    return pl.read_parquet(Path(ref["dir"]) / "docs.parquet")


def _fingerprint_or_none(path: Path) -> str | None:
    """The file's content hash, or None for what cannot be hashed (missing, unreadable, not a regular
    file): ``read_file`` then records why as a rejected row."""
    import stat

    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        return file_fingerprint(path)
    except OSError:
        return None


@lru_cache(maxsize=64)
def _fingerprint_of(path: str, size: int, mtime_ns: int, inode: int) -> str | None:
    return _fingerprint_or_none(Path(path))


def _known_fingerprint(path: Path) -> str | None:
    """The content hash of a file a stage's config names (an evaluation set, a model), hashed once per
    process while the file stays the same (a 126 MB model is not read again for every shard)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return _fingerprint_of(str(path), st.st_size, st.st_mtime_ns, st.st_ino)


@task(name="ingest", task_run_name="ingest-{index}", **TASK_OPTS)
def ingest_shard(index: int, files: list[dict[str, Any]], params: dict[str, Any], cache_dir: str) -> UnitRef:
    """Read a group of input files (or parts of one big file) into documents and rejected rows."""
    from pipeline.ingest import InputFile, read_file

    inputs = [InputFile.from_dict(f) for f in files]  # paths that are not UTF-8 travel as hex
    # a part of a cut file carries the hash of what it reads: the whole file is not hashed once per part
    fingerprints = [f.fingerprint or _fingerprint_or_none(f.path) for f in inputs]
    described = [
        # a part is named by its range, not the file's size and time: appending to a big JSONL file
        # leaves its earlier parts cached
        (f["display"], f["fmt"], f["source"], f.get("reason"), (f.get("part") or [])[:3], fp)
        for f, fp in zip(files, fingerprints, strict=True)
    ]
    key = make_key(unit_code(ingest_shard, "pipeline.ingest"), "ingest", params, described)

    def compute(staging: Path) -> dict[str, Any]:
        cfg = _config("ingest", params)
        docs, rejected = [], []
        for f in inputs:
            d, r = read_file(f, cfg)
            docs.append(d)
            rejected.append(r)
        kept = pl.concat(docs, how="vertical") if docs else pl.DataFrame()
        rej = pl.concat(rejected, how="vertical") if rejected else empty_rejected()
        per_file = [
            {"path": f["display"], "bytes": f["part"][3] if f.get("part") else f["size"], "xxh3": fp}
            | ({"part_start": f["part"][0]} if f.get("part") else {})
            for f, fp in zip(files, fingerprints, strict=True)
        ]
        return write_docs(staging, "ingest", index, kept, rej, kept.height + rej.height, {"files": per_file})

    return run_unit(cache_dir, "ingest", key, index, compute)


@task(name="docs-stage", task_run_name="{stage}-{index}", **TASK_OPTS)
def doc_stage(stage: str, index: int, params: dict[str, Any], in_ref: UnitRef, cache_dir: str) -> UnitRef:
    """One document stage on one shard: kept and rejected rows."""
    cfg = _config(stage, params)
    read = [(str(p), _known_fingerprint(p)) for p in getattr(cfg, "files_read", list)()]
    code = unit_code(doc_stage, *_stage_modules(stage))
    key = make_key(code, stage, STAGES[stage].func_path, params, in_ref["key"], read)

    def compute(staging: Path) -> dict[str, Any]:
        df = read_docs(in_ref)
        result = STAGES[stage].func()(df, cfg)
        rejected = result.rejected
        if stage == "pii":
            # Documents the policy drops leave with their text: redact it, so no unit after `pii` holds any.
            from pipeline.pii.columns import redact_rejected

            rejected = redact_rejected(rejected, cfg)
        return write_docs(staging, stage, index, result.kept, rejected, df.height, result.stats)

    return run_unit(cache_dir, stage, key, index, compute)


def _rewrite_rejected(step: str, stage: str, params: dict, rejected_path: str, cache_dir: str, fn, code: str) -> str:
    """A unit holding ``fn(rows, config)`` of the rejected part at ``rejected_path``, keyed by the part's own
    unit folder (cache/<step>/<key>/, which names its content) and ``stage``'s params; returns its path."""
    src = Path(rejected_path)
    key = make_key(code, step, params, [src.parent.parent.name, src.parent.name])

    def compute(staging: Path) -> dict[str, Any]:
        fn(pl.read_parquet(src), _config(stage, params)).write_parquet(staging / "rejected.parquet", compression="zstd")
        return {}

    return str(Path(run_unit(cache_dir, step, key, -1, compute)["dir"]) / "rejected.parquet")


@task(name="label-rejected", task_run_name="label-rejected-{name}", **TASK_OPTS)
def label_rejected_task(name: str, params: dict[str, Any], rejected_path: str, cache_dir: str) -> str:
    """``rejected_path`` (rows rejected before language ID) with ``lang``/``lang_score`` filled in."""
    from pipeline.langid.stage import label_rejected

    code = unit_code(label_rejected_task, "pipeline.langid.stage")
    return _rewrite_rejected("label-rejected", "langid", params, rejected_path, cache_dir, label_rejected, code)


@task(name="redact-rejected", task_run_name="redact-rejected-{name}", **TASK_OPTS)
def redact_rejected_task(name: str, params: dict[str, Any], rejected_path: str, cache_dir: str) -> str:
    """``rejected_path`` (rows dropped before the ``pii`` stage) with personal data redacted in every column
    by the ``pii`` stage's detection and policy."""
    from pipeline.pii.columns import redact_rejected

    code = unit_code(redact_rejected_task, "pipeline.pii.columns")
    return _rewrite_rejected("redact-rejected", "pii", params, rejected_path, cache_dir, redact_rejected, code)


@task(name="dedup-signatures", task_run_name="dedup-signatures-{index}", **TASK_OPTS)
def dedup_signatures(index: int, params: dict[str, Any], in_ref: UnitRef, cache_dir: str) -> UnitRef:
    """MinHash signatures (and exact hashes) of one shard's documents."""
    from pipeline.dedup.hashing import signatures

    key = make_key(unit_code(dedup_signatures, "pipeline.dedup.hashing"), "dedup-signatures", params, in_ref["key"])

    def compute(staging: Path) -> dict[str, Any]:
        df = read_docs(in_ref)
        signatures(df, _config("dedup", params)).write_parquet(staging / "signatures.parquet")
        return {"docs_in": df.height}

    return run_unit(cache_dir, "dedup-signatures", key, index, compute)


@task(name="dedup-clusters", **HEAVY_OPTS)
def dedup_clusters(params: dict[str, Any], sig_refs: list[UnitRef], cache_dir: str) -> UnitRef:
    """Global step: clusters over every shard's signatures, read file by file from Parquet (grouping keys
    are spooled to hash buckets under the staging folder when they exceed ``memory_mb``, never one table
    in memory), against earlier runs' indexes if asked; writes ``removed.parquet`` and this run's index
    (``index/``) for later runs."""
    from pipeline.dedup.clustering import REMOVED_SCHEMA, find_duplicates
    from pipeline.dedup.index import INDEX_FILE, load_index, write_index
    from pipeline.dedup.summary import cluster_summary

    cfg = _config("dedup", params)
    prior_files = []
    for p in cfg.against:
        d = Path(p) / "dedup_index" if (Path(p) / "dedup_index" / INDEX_FILE).is_file() else Path(p)
        prior_files.append(file_fingerprint(d / INDEX_FILE) if (d / INDEX_FILE).is_file() else str(d))
    key = make_key(
        unit_code(dedup_clusters, "pipeline.dedup.clustering", "pipeline.dedup.index", "pipeline.dedup.summary"),
        "dedup-clusters",
        params,
        [r["key"] for r in sig_refs],
        prior_files,
    )

    def compute(staging: Path) -> dict[str, Any]:
        paths = [Path(r["dir"]) / "signatures.parquet" for r in sig_refs]
        prior = load_index(cfg.against, cfg)
        if not paths:
            removed = pl.DataFrame(schema=REMOVED_SCHEMA)
            totals: dict[str, int] = {}
        else:
            sigs = pl.concat([pl.scan_parquet(p) for p in paths], how="vertical")
            removed = find_duplicates(paths, cfg, prior=prior, workdir=staging)
            totals = dict(sigs.group_by("source").len().sort("source").collect().iter_rows())
            write_index(sigs, removed, staging / "index", cfg, prior=prior)
        removed.write_parquet(staging / "removed.parquet")
        stats = {**cluster_summary(removed, totals_by_source=totals), "lsh": cfg.lsh_summary()}
        return {"docs_in": sum(totals.values()), "stats": stats}

    return run_unit(cache_dir, "dedup-clusters", key, -1, compute)


def _rows_digest(frame: pl.DataFrame) -> str:
    """A content hash of a frame's rows in id order, columnar (no Python row objects: a shard's split rows
    number as many as its documents, and every rerun hashes them). Polars' row hash depends on the values,
    not on how the frame's memory is laid out; a polars upgrade may change it, and then recomputes once."""
    hashes = frame.sort("id").hash_rows(seed=0)
    return xxhash.xxh3_128_hexdigest(hashes.to_numpy().tobytes() + str(frame.schema).encode())


@task(name="dedup-apply", task_run_name="dedup-{index}", **TASK_OPTS)
def dedup_apply(index: int, in_ref: UnitRef, clusters_ref: UnitRef, cache_dir: str) -> UnitRef:
    """Drop one shard's documents that the clusters remove. Keyed by the removals that touch this shard,
    not by the whole cluster step, so input files added to a run leave untouched shards cached."""
    from pipeline.dedup.apply import apply_duplicates

    ids = pl.read_parquet(Path(in_ref["dir"]) / "docs.parquet", columns=["id"])
    removed = (
        pl.scan_parquet(Path(clusters_ref["dir"]) / "removed.parquet").join(ids.lazy(), on="id", how="semi").collect()
    )
    key = make_key(unit_code(dedup_apply, "pipeline.dedup.apply"), "dedup", in_ref["key"], _rows_digest(removed))

    def compute(staging: Path) -> dict[str, Any]:
        df = read_docs(in_ref)
        result = apply_duplicates(df, removed)
        return write_docs(staging, "dedup", index, result.kept, result.rejected, df.height, result.stats)

    return run_unit(cache_dir, "dedup", key, index, compute)


@task(name="tokenizer", **HEAVY_OPTS)
def train_tokenizer_task(params: dict[str, Any], doc_refs: list[UnitRef], cache_dir: str) -> UnitRef:
    """Global step: the sentencepiece tokenizer trained on the curated documents."""
    from pipeline.tokenizer.training import train_tokenizer

    code = unit_code(train_tokenizer_task, "pipeline.tokenizer.training")
    key = make_key(code, "tokenizer", params, [r["key"] for r in doc_refs])

    def compute(staging: Path) -> dict[str, Any]:
        info = train_tokenizer(
            [Path(r["dir"]) / "docs.parquet" for r in doc_refs], staging, _config("tokenizer", params)
        )
        docs = sum(r["docs_out"] for r in doc_refs)
        return {"docs_in": docs, "docs_out": docs, "rejected": 0, "stats": info}

    return run_unit(cache_dir, "tokenizer", key, -1, compute)


@task(name="split", **TASK_OPTS)
def split_task(params: dict[str, Any], doc_refs: list[UnitRef], cache_dir: str) -> UnitRef:
    """Global step: the train/validation split of every document (whole groups go to one side)."""
    from pipeline.shards import assign_split, text_hash_expr

    key = make_key(unit_code(split_task, "pipeline.shards"), "split", params, [r["key"] for r in doc_refs])

    def ids(path: Path) -> pl.DataFrame:
        scan = pl.scan_parquet(path)
        cols = [c for c in ("id", "source", "group_id") if c in scan.collect_schema()]
        return scan.select(*cols, text_hash_expr()).collect()

    def compute(staging: Path) -> dict[str, Any]:
        docs = pl.concat([ids(Path(r["dir"]) / "docs.parquet") for r in doc_refs], how="diagonal_relaxed")
        assign_split(docs, _config("shards", params)).write_parquet(staging / "split.parquet")
        return {"docs_in": docs.height}

    return run_unit(cache_dir, "split", key, -1, compute)


@task(name="tokenize", task_run_name="tokenize-{index}", **TASK_OPTS)
def tokenize_task(
    index: int, params: dict[str, Any], in_ref: UnitRef, tok_ref: UnitRef, split_ref: UnitRef, cache_dir: str
) -> UnitRef:
    """One shard's documents as token files, ``train-NNN.parquet`` and ``val-NNN.parquet``. Keyed by this
    shard's rows of the split, not the whole split."""
    from pipeline.shards import file_parts, tokenize_docs

    ids = pl.read_parquet(Path(in_ref["dir"]) / "docs.parquet", columns=["id"])
    split = pl.scan_parquet(Path(split_ref["dir"]) / "split.parquet").join(ids.lazy(), on="id", how="semi").collect()
    code = unit_code(tokenize_task, "pipeline.shards")
    key = make_key(code, "tokenize", params, in_ref["key"], tok_ref["key"], _rows_digest(split))

    def compute(staging: Path) -> dict[str, Any]:
        cfg = _config("shards", params)
        docs = read_docs(in_ref).drop("meta", "path", strict=False)
        docs = docs.join(split, on="id", how="left", maintain_order="left")
        tokens = tokenize_docs(docs.drop("split"), Path(tok_ref["dir"]), cfg).with_columns(docs["split"])
        counts: dict[str, Any] = {}
        for name in ("train", "val"):
            part = tokens.filter(pl.col("split") == name).drop("split")
            files = []
            chunks = part.with_columns(file_parts(part["n_tokens"], cfg.max_tokens_per_file)).partition_by(
                "_part", maintain_order=True, include_key=False
            )
            for k, chunk in enumerate(chunks if part.height else []):
                files.append(f"{name}-{k:03d}.parquet")
                chunk.write_parquet(staging / files[-1], compression="zstd")
            per_source = part.group_by("source").agg(pl.col("n_tokens").sum(), pl.col("n_bytes").sum()).sort("source")
            counts[name] = {
                "docs": part.height,
                "tokens": int(part["n_tokens"].sum()),
                "files": files,
                "by_source": {s: int(n) for s, n, _ in per_source.iter_rows()},
                "bytes_by_source": {s: int(b) for s, _, b in per_source.iter_rows()},
            }
        return {"docs_in": docs.height, "docs_out": docs.height, "rejected": 0, "stats": counts}

    return run_unit(cache_dir, "tokenize", key, index, compute)


@task(name="tokenizer-metrics", **HEAVY_OPTS)
def tokenizer_metrics_task(
    params: dict[str, Any], doc_refs: list[UnitRef], tok_ref: UnitRef, split_ref: UnitRef, cache_dir: str
) -> UnitRef:
    """Compression figures on (up to ``metrics_mb`` of) the validation documents."""
    from pipeline.tokenizer.metrics import tokenizer_metrics

    code = unit_code(tokenizer_metrics_task, "pipeline.tokenizer.metrics", "pipeline.shards")
    key = make_key(code, "tokenizer-metrics", params, [r["key"] for r in doc_refs], tok_ref["key"], split_ref["key"])

    def compute(staging: Path) -> dict[str, Any]:
        cfg = _config("shards", params)
        val = pl.read_parquet(Path(split_ref["dir"]) / "split.parquet").filter(pl.col("split") == "val").select("id")
        # Shard by shard, stopping once `metrics_mb` of validation text is in hand: memory holds that, not the corpus.
        limit, offset, parts = cfg.metrics_mb * 1e6, 0, []
        for r in doc_refs:
            if offset >= limit:
                break
            part = (
                pl.scan_parquet(Path(r["dir"]) / "docs.parquet")
                .select("id", "source", "text")
                .join(val.lazy(), on="id", how="semi", maintain_order="left")
                .collect()
            )
            n = part["text"].str.len_bytes()
            parts.append(part.filter(offset + n.cum_sum() - n < limit))
            offset += int(n.sum())
        empty = pl.DataFrame(schema={"id": pl.String, "source": pl.String, "text": pl.String})
        docs = pl.concat(parts) if parts else empty
        return {"stats": tokenizer_metrics(docs, Path(tok_ref["dir"]), cfg.threads) if docs.height else {}}

    return run_unit(cache_dir, "tokenizer-metrics", key, -1, compute)


@task(name="train", **HEAVY_OPTS)
def train_task(params: dict[str, Any], data_dir: str, data_keys: list[str], cache_dir: str) -> UnitRef:
    """Global step: train a model on the token files in ``data_dir`` (named by ``data_keys``)."""
    from model.train import train

    key = make_key(unit_code(train_task, "model.train"), "train", params, data_keys)

    def compute(staging: Path) -> dict[str, Any]:
        shown = TrainingProgress(_config("train", params).steps)

        def log(record: dict[str, Any]) -> None:
            if record.get("kind") == "train":
                progress().advance("train")
                progress().describe("train", training_line(record))
                shown.update(record)

        metrics = train(Path(data_dir), staging, _config("train", params), log=log)
        return {
            "stats": {k: metrics.get(k) for k in ("params", "final_val_loss", "final_val_per_source", "tokens_seen")}
        }

    return run_unit(cache_dir, "train", key, -1, compute)


def write_json(path: Path, data: Any) -> None:
    from pipeline.atomic import atomic_write_bytes

    atomic_write_bytes(path, json.dumps(data, indent=2, sort_keys=True).encode())
