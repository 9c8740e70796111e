"""Prefect tasks: each runs one unit of work over paths and returns a small reference dict.

A reference (``ref``) is ``{"step", "key", "dir", "index", "docs_in", "docs_out", "rejected",
"seconds", "stats", "cached"}``; large data never travels through Prefect, only these.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import polars as pl
from prefect import task
from prefect.tasks import exponential_backoff

from flows.cache import WorkUnit, file_fingerprint, make_key
from flows.progress import progress
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


def _ref(unit: WorkUnit, index: int, cached: bool) -> dict[str, Any]:
    info = unit.info()
    return {"step": unit.step, "key": unit.key, "dir": str(unit.dir), "index": index, "cached": cached, **info}


def _config(stage: str, params: dict[str, Any]):
    return STAGES[stage].config_cls()(**params)


def _write_result(
    unit: WorkUnit,
    index: int,
    kept: pl.DataFrame,
    rejected: pl.DataFrame,
    docs_in: int,
    seconds: float,
    stats: dict[str, Any],
) -> dict[str, Any]:
    if kept.height + rejected.height != docs_in:
        raise RuntimeError(
            f"{unit.step}: accounting broken on shard {index}: {docs_in} in, "
            f"{kept.height} kept + {rejected.height} rejected"
        )
    staging = unit.staging()
    kept.write_parquet(staging / "docs.parquet", compression="zstd")
    rejected.select(list(REJECTED_SCHEMA)).write_parquet(staging / "rejected.parquet", compression="zstd")
    info = {
        "docs_in": docs_in,
        "docs_out": kept.height,
        "rejected": rejected.height,
        "seconds": round(seconds, 3),
        "stats": stats,
    }
    unit.commit(staging, info)
    return _ref(unit, index, cached=False)


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


@task(name="ingest", task_run_name="ingest-{index}", **TASK_OPTS)
def ingest_shard(index: int, files: list[dict[str, Any]], params: dict[str, Any], cache_dir: str) -> dict[str, Any]:
    from pipeline.ingest import InputFile, read_file

    inputs = [InputFile.from_dict(f) for f in files]  # paths that are not UTF-8 travel as hex
    fingerprints = [_fingerprint_or_none(f.path) for f in inputs]
    key = make_key(
        "ingest", params, [(f["display"], f["fmt"], f["source"], fp) for f, fp in zip(files, fingerprints, strict=True)]
    )
    unit = WorkUnit(Path(cache_dir), "ingest", key)
    if unit.done:
        return _ref(unit, index, cached=True)
    cfg = _config("ingest", params)
    start = time.perf_counter()
    docs, rejected = [], []
    for f in inputs:
        d, r = read_file(f, cfg)
        docs.append(d)
        rejected.append(r)
    kept = pl.concat(docs, how="vertical") if docs else pl.DataFrame()
    rej = pl.concat(rejected, how="vertical") if rejected else empty_rejected()
    stats = {
        "files": [
            {"path": f["display"], "bytes": f["size"], "xxh3": fp} for f, fp in zip(files, fingerprints, strict=True)
        ]
    }
    return _write_result(unit, index, kept, rej, kept.height + rej.height, time.perf_counter() - start, stats)


@task(name="docs-stage", task_run_name="{stage}-{index}", **TASK_OPTS)
def doc_stage(stage: str, index: int, params: dict[str, Any], in_ref: dict[str, Any], cache_dir: str) -> dict:
    unit = WorkUnit(Path(cache_dir), stage, make_key(stage, params, in_ref["key"]))
    if unit.done:
        return _ref(unit, index, cached=True)
    df = pl.read_parquet(Path(in_ref["dir"]) / "docs.parquet")
    start = time.perf_counter()
    cfg = _config(stage, params)
    result = STAGES[stage].func()(df, cfg)
    rejected = result.rejected
    if stage == "pii":
        # Documents the policy drops leave with their text: redact it, so no unit after `pii` holds any.
        from pipeline.pii.columns import redact_rejected

        rejected = redact_rejected(rejected, cfg)
    return _write_result(unit, index, result.kept, rejected, df.height, time.perf_counter() - start, result.stats)


def _rewrite_rejected(step: str, stage: str, params: dict[str, Any], rejected_path: str, cache_dir: str, fn) -> str:
    """A unit holding ``fn(rows, config)`` of the rejected part at ``rejected_path``, keyed by the part's own
    unit folder (cache/<step>/<key>/, which names its content) and ``stage``'s params; returns its path."""
    src = Path(rejected_path)
    unit = WorkUnit(Path(cache_dir), step, make_key(step, params, [src.parent.parent.name, src.parent.name]))
    if not unit.done:
        staging = unit.staging()
        fn(pl.read_parquet(src), _config(stage, params)).write_parquet(staging / "rejected.parquet", compression="zstd")
        unit.commit(staging, {})
    return str(unit.dir / "rejected.parquet")


@task(name="label-rejected", task_run_name="label-rejected-{name}", **TASK_OPTS)
def label_rejected_task(name: str, params: dict[str, Any], rejected_path: str, cache_dir: str) -> str:
    """``rejected_path`` (rows rejected before language ID) with ``lang``/``lang_score`` filled in."""
    from pipeline.langid.stage import label_rejected

    return _rewrite_rejected("label-rejected", "langid", params, rejected_path, cache_dir, label_rejected)


@task(name="redact-rejected", task_run_name="redact-rejected-{name}", **TASK_OPTS)
def redact_rejected_task(name: str, params: dict[str, Any], rejected_path: str, cache_dir: str) -> str:
    """``rejected_path`` (rows dropped before the ``pii`` stage) with personal data redacted in every column
    by the ``pii`` stage's detection and policy."""
    from pipeline.pii.columns import redact_rejected

    return _rewrite_rejected("redact-rejected", "pii", params, rejected_path, cache_dir, redact_rejected)


@task(name="dedup-signatures", task_run_name="dedup-signatures-{index}", **TASK_OPTS)
def dedup_signatures(index: int, params: dict[str, Any], in_ref: dict[str, Any], cache_dir: str) -> dict:
    from pipeline.dedup.stage import signatures

    unit = WorkUnit(Path(cache_dir), "dedup-signatures", make_key("dedup-signatures", params, in_ref["key"]))
    if unit.done:
        return _ref(unit, index, cached=True)
    df = pl.read_parquet(Path(in_ref["dir"]) / "docs.parquet")
    start = time.perf_counter()
    sigs = signatures(df, _config("dedup", params))
    staging = unit.staging()
    sigs.write_parquet(staging / "signatures.parquet")
    unit.commit(staging, {"docs_in": df.height, "seconds": round(time.perf_counter() - start, 3)})
    return _ref(unit, index, cached=False)


@task(name="dedup-clusters", **HEAVY_OPTS)
def dedup_clusters(params: dict[str, Any], sig_refs: list[dict[str, Any]], cache_dir: str) -> dict:
    """Global step: clusters over every shard's signatures, read file by file from Parquet (grouping keys
    are spooled to hash buckets under the staging folder when they exceed ``memory_mb``, never one table
    in memory), against earlier runs' indexes if asked; writes ``removed.parquet`` and this run's index
    (``index/``) for later runs."""
    from pipeline.dedup.stage import INDEX_FILE, cluster_summary, find_duplicates, load_index, write_index

    cfg = _config("dedup", params)
    prior_files = []
    for p in cfg.against:
        d = Path(p) / "dedup_index" if (Path(p) / "dedup_index" / INDEX_FILE).is_file() else Path(p)
        prior_files.append(file_fingerprint(d / INDEX_FILE) if (d / INDEX_FILE).is_file() else str(d))
    key = make_key("dedup-clusters", params, [r["key"] for r in sig_refs], prior_files)
    unit = WorkUnit(Path(cache_dir), "dedup-clusters", key)
    if unit.done:
        return _ref(unit, -1, cached=True)
    start = time.perf_counter()
    paths = [Path(r["dir"]) / "signatures.parquet" for r in sig_refs]
    sigs = pl.concat([pl.scan_parquet(p) for p in paths], how="vertical") if paths else None
    prior = load_index(cfg.against, cfg)
    staging = unit.staging()
    if sigs is None:
        from pipeline.dedup.stage import REMOVED_SCHEMA

        removed = pl.DataFrame(schema=REMOVED_SCHEMA)
        totals: dict[str, int] = {}
    else:
        removed = find_duplicates(paths, cfg, prior=prior, workdir=staging)
        totals = dict(sigs.group_by("source").len().sort("source").collect().iter_rows())
        write_index(sigs, removed, staging / "index", cfg, prior=prior)
    removed.write_parquet(staging / "removed.parquet")
    stats = {**cluster_summary(removed, totals_by_source=totals), "lsh": cfg.lsh_summary()}
    docs_in = sum(totals.values())
    unit.commit(staging, {"docs_in": docs_in, "seconds": round(time.perf_counter() - start, 3), "stats": stats})
    return _ref(unit, -1, cached=False)


@task(name="dedup-apply", task_run_name="dedup-{index}", **TASK_OPTS)
def dedup_apply(index: int, in_ref: dict[str, Any], clusters_ref: dict[str, Any], cache_dir: str) -> dict:
    from pipeline.dedup.stage import apply_duplicates

    unit = WorkUnit(Path(cache_dir), "dedup", make_key("dedup", in_ref["key"], clusters_ref["key"]))
    if unit.done:
        return _ref(unit, index, cached=True)
    df = pl.read_parquet(Path(in_ref["dir"]) / "docs.parquet")
    removed = pl.read_parquet(Path(clusters_ref["dir"]) / "removed.parquet")
    start = time.perf_counter()
    result = apply_duplicates(df, removed)
    return _write_result(
        unit, index, result.kept, result.rejected, df.height, time.perf_counter() - start, result.stats
    )


@task(name="tokenizer", **HEAVY_OPTS)
def train_tokenizer_task(params: dict[str, Any], doc_refs: list[dict[str, Any]], cache_dir: str) -> dict:
    from pipeline.tokenizer.training import train_tokenizer

    unit = WorkUnit(Path(cache_dir), "tokenizer", make_key("tokenizer", params, [r["key"] for r in doc_refs]))
    if unit.done:
        return _ref(unit, -1, cached=True)
    start = time.perf_counter()
    staging = unit.staging()
    paths = [Path(r["dir"]) / "docs.parquet" for r in doc_refs]
    info = train_tokenizer(paths, staging, _config("tokenizer", params))
    docs = sum(r["docs_out"] for r in doc_refs)
    unit.commit(
        staging,
        {
            "docs_in": docs,
            "docs_out": docs,
            "rejected": 0,
            "seconds": round(time.perf_counter() - start, 3),
            "stats": info,
        },
    )
    return _ref(unit, -1, cached=False)


@task(name="split", **TASK_OPTS)
def split_task(params: dict[str, Any], doc_refs: list[dict[str, Any]], cache_dir: str) -> dict:
    from pipeline.shards import assign_split, text_hash_expr

    unit = WorkUnit(Path(cache_dir), "split", make_key("split", params, [r["key"] for r in doc_refs]))
    if unit.done:
        return _ref(unit, -1, cached=True)

    def ids(path: Path) -> pl.DataFrame:
        scan = pl.scan_parquet(path)
        cols = [c for c in ("id", "source", "group_id") if c in scan.collect_schema()]
        return scan.select(*cols, text_hash_expr()).collect()

    docs = pl.concat([ids(Path(r["dir"]) / "docs.parquet") for r in doc_refs], how="diagonal_relaxed")
    split = assign_split(docs, _config("shards", params))
    staging = unit.staging()
    split.write_parquet(staging / "split.parquet")
    unit.commit(staging, {"docs_in": docs.height})
    return _ref(unit, -1, cached=False)


@task(name="tokenize", task_run_name="tokenize-{index}", **TASK_OPTS)
def tokenize_task(
    index: int,
    params: dict[str, Any],
    in_ref: dict[str, Any],
    tok_ref: dict[str, Any],
    split_ref: dict[str, Any],
    cache_dir: str,
) -> dict:
    from pipeline.shards import file_parts, tokenize_docs

    key = make_key("tokenize", params, in_ref["key"], tok_ref["key"], split_ref["key"])
    unit = WorkUnit(Path(cache_dir), "tokenize", key)
    if unit.done:
        return _ref(unit, index, cached=True)
    start = time.perf_counter()
    docs = pl.read_parquet(Path(in_ref["dir"]) / "docs.parquet").drop("meta", "path", strict=False)
    split = pl.read_parquet(Path(split_ref["dir"]) / "split.parquet")
    docs = docs.join(split, on="id", how="left", maintain_order="left")
    tokens = tokenize_docs(docs.drop("split"), Path(tok_ref["dir"]), _config("shards", params))
    tokens = tokens.with_columns(docs["split"])
    staging = unit.staging()
    counts: dict[str, Any] = {}
    cfg = _config("shards", params)
    for name in ("train", "val"):
        part = tokens.filter(pl.col("split") == name).drop("split")
        files = []
        chunks = part.with_columns(file_parts(part["n_tokens"], cfg.max_tokens_per_file)).partition_by(
            "_part", maintain_order=True, include_key=False
        )
        for k, chunk in enumerate(chunks if part.height else []):
            files.append(f"{name}-{k:03d}.parquet")
            chunk.write_parquet(staging / files[-1], compression="zstd")
        counts[name] = {"docs": part.height, "tokens": int(part["n_tokens"].sum()), "files": files}
        per_source = part.group_by("source").agg(pl.col("n_tokens").sum(), pl.col("n_bytes").sum()).sort("source")
        counts[name]["by_source"] = {s: int(n) for s, n, _ in per_source.iter_rows()}
        counts[name]["bytes_by_source"] = {s: int(b) for s, _, b in per_source.iter_rows()}
    unit.commit(
        staging,
        {
            "docs_in": docs.height,
            "docs_out": docs.height,
            "rejected": 0,
            "seconds": round(time.perf_counter() - start, 3),
            "stats": counts,
        },
    )
    return _ref(unit, index, cached=False)


@task(name="tokenizer-metrics", **HEAVY_OPTS)
def tokenizer_metrics_task(
    params: dict[str, Any],
    doc_refs: list[dict[str, Any]],
    tok_ref: dict[str, Any],
    split_ref: dict[str, Any],
    cache_dir: str,
) -> dict:
    """Compression figures on (up to ``metrics_mb`` of) the validation documents."""
    from pipeline.tokenizer.metrics import tokenizer_metrics

    key = make_key("tokenizer-metrics", params, [r["key"] for r in doc_refs], tok_ref["key"], split_ref["key"])
    unit = WorkUnit(Path(cache_dir), "tokenizer-metrics", key)
    if unit.done:
        return _ref(unit, -1, cached=True)
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
    docs = pl.concat(parts) if parts else pl.DataFrame(schema={"id": pl.String, "source": pl.String, "text": pl.String})
    staging = unit.staging()
    unit.commit(staging, {"stats": tokenizer_metrics(docs, Path(tok_ref["dir"]), cfg.threads) if docs.height else {}})
    return _ref(unit, -1, cached=False)


@task(name="train", **HEAVY_OPTS)
def train_task(params: dict[str, Any], shards_dir: str, shard_keys: list[str], cache_dir: str) -> dict:
    from model.train import train

    unit = WorkUnit(Path(cache_dir), "train", make_key("train", params, shard_keys))
    if unit.done:
        return _ref(unit, -1, cached=True)
    start = time.perf_counter()
    staging = unit.staging()

    def log(record: dict[str, Any]) -> None:
        if record.get("kind") == "train":
            progress().advance("train")

    metrics = train(Path(shards_dir), staging, _config("train", params), log=log)
    summary = {k: metrics.get(k) for k in ("params", "final_val_loss", "final_val_per_source", "tokens_seen")}
    unit.commit(staging, {"seconds": round(time.perf_counter() - start, 3), "stats": summary})
    return _ref(unit, -1, cached=False)


def write_json(path: Path, data: Any) -> None:
    from pipeline.atomic import atomic_write_bytes

    atomic_write_bytes(path, json.dumps(data, indent=2, sort_keys=True).encode())
