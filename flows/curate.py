"""The curation flow: files -> documents -> tokenizer -> token shards -> model -> report.

Per-shard stages are mapped over shards as Prefect tasks; global steps (dedup clusters,
tokenizer, split, training) run once. Every task passes paths, and every unit of work is
cached by content (see ``flows.cache``), so a rerun resumes where a killed run stopped.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prefect import flow, unmapped
from prefect.futures import wait

import pipeline
from flows import tasks
from flows.artifacts import RunArtifacts
from flows.cache import clean_staging, code_version
from flows.progress import progress
from flows.run_folder import RunFolder, check_run_folder, lock_cache, prune_cache
from flows.runners import task_runner
from flows.stages import STAGES, StageKind
from pipeline.ingest import InputFile, discover

# Rough text expansion of compressed inputs, so a shard of .gz files is not four times too big.
_EXPANSION = {".gz": 4, ".zst": 5}


def group_files(files: list[InputFile], shard_bytes: int, max_files: int) -> list[list[InputFile]]:
    """Cut the sorted file list into shards of about ``shard_bytes`` of text and at most ``max_files``.

    A file is never split, so one big file forms its own shard.
    """
    groups: list[list[InputFile]] = []
    current: list[InputFile] = []
    size = 0
    for f in files:
        est = max(f.size, 0) * _EXPANSION.get(f.path.suffix, 1)  # problem entries have size -1
        if current and (size + est > shard_bytes or len(current) >= max_files):
            groups.append(current)
            current, size = [], 0
        current.append(f)
        size += est
    if current:
        groups.append(current)
    return groups


def _gather(futures: list, stage: str) -> list[dict[str, Any]]:
    """Wait for mapped tasks, advancing the progress display as each finishes."""
    pending = list(futures)
    while pending:
        done, not_done = wait(pending, timeout=0.5)
        if done:
            progress().advance(stage, len(done))
        pending = list(not_done)
    return [f.result() for f in futures]


def _stage_summary(
    name: str,
    refs: list[dict[str, Any]],
    seconds: float,
    extra: dict | None = None,
    artifacts: RunArtifacts | None = None,
) -> dict:
    summary = {
        "name": name,
        "docs_in": sum(r.get("docs_in", 0) for r in refs),
        "docs_out": sum(r.get("docs_out", 0) for r in refs),
        "docs_rejected": sum(r.get("rejected", 0) for r in refs),
        "seconds": round(seconds, 3),
        "shards": len(refs),
        "cached_shards": sum(bool(r.get("cached")) for r in refs),
        # Where each shard's output lives, so `refinery inspect` can compare a stage's input and output.
        "units": [{"index": r.get("index", -1), "dir": r["dir"]} for r in refs if "dir" in r],
    }
    if extra:
        summary["stats"] = extra
    progress().finish(name, summary)
    if artifacts is not None:
        artifacts.stage(summary)
    return summary


def merge_stats(refs: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum per-shard numeric stats (nested dicts of counts) into one."""

    def merge(a: dict, b: dict) -> dict:
        out = dict(a)
        for k, v in b.items():
            if isinstance(v, dict):
                out[k] = merge(out.get(k, {}), v)
            elif isinstance(v, int | float) and not isinstance(v, bool):
                out[k] = out.get(k, 0) + v
        return out

    merged: dict[str, Any] = {}
    for r in refs:
        merged = merge(merged, r.get("stats") or {})
    return merged


@flow(
    name="refinery-curate",
    task_runner=task_runner(),
    validate_parameters=False,
    # The manifest is the flow's result: persisted as JSON (never pickle) for the UI and the API.
    persist_result=True,
    result_serializer="json",
)
def curate(recipe: dict[str, Any], inputs: list[list[Any]], out: str, cache_dir: str | None = None) -> dict:
    """Run ``recipe`` (as from ``Recipe.as_dict()``) over ``inputs`` ([source or None, path] pairs) into ``out``.

    Raises ``flows.run_folder.RunFolderError`` (touching nothing) when ``out`` is not a folder this run
    may write, lies inside an input, or another run holds it or the cache.
    """
    out_dir = Path(out)
    cache = Path(cache_dir) if cache_dir else out_dir / "cache"
    folder = check_run_folder(out_dir, cache_dir, [p for _, p in inputs])
    folder.claim(cache)
    cache_lock = None
    try:
        cache_lock = lock_cache(cache)
        clean_staging(cache)
        return _curate(folder, recipe, inputs, cache)
    finally:
        if cache_lock is not None:
            cache_lock.release()
        folder.release()


def _curate(folder: RunFolder, recipe: dict[str, Any], inputs: list[list[Any]], cache: Path) -> dict:
    out_dir = folder.root
    stages = recipe["stages"]
    artifacts = RunArtifacts(recipe.get("name", "custom"), len(stages))
    cache_s = str(cache)
    manifest: dict[str, Any] = {
        "refinery_version": pipeline.__version__,
        "code_version": code_version(),
        "recipe": recipe,
        "stages": [],
    }
    summaries = manifest["stages"]
    pii_params = next((s["params"] for s in stages if s["name"] == "pii"), None)
    # Unit folders made once the text is free of personal data: the only ones an in-folder cache keeps.
    clean_units: list[str] = []

    # --- ingest -----------------------------------------------------------------------------
    ingest_params = stages[0]["params"]
    start = time.perf_counter()
    files, warnings = discover([(s, p) for s, p in inputs])
    shard_mb, max_files = ingest_params.get("shard_mb", 32), ingest_params.get("max_files_per_shard", 2000)
    groups = group_files(files, int(shard_mb * 1_000_000), max_files)
    progress().start("ingest", len(groups))
    futures = [
        tasks.ingest_shard.submit(i, [f.to_dict() for f in g], ingest_params, cache_s) for i, g in enumerate(groups)
    ]
    refs = _gather(futures, "ingest")
    summaries.append(_stage_summary("ingest", refs, time.perf_counter() - start, artifacts=artifacts))
    manifest["inputs"] = _input_fingerprints(inputs, refs)
    manifest["discovery_warnings"] = warnings
    if pii_params is not None:  # file names can hold personal data too (an e-mail as a folder name)
        _redact_input_names(manifest, STAGES["pii"].config_cls()(**pii_params))
    rejected_parts = {
        f"ingest-{r['index']:05d}.parquet": Path(r["dir"]) / "rejected.parquet" for r in refs if r["rejected"]
    }

    # --- document stages, in recipe order -----------------------------------------------------
    extra_outputs: dict[str, Any] = {}
    tok_ref = None
    shard_refs: list[dict[str, Any]] = []
    pii_done = False  # the text of every unit made from here on is free of personal data
    raw_parts = set(rejected_parts)  # rejected parts made before or by `pii`: redacted before publishing
    for spec in stages[1:]:
        name, params, kind = spec["name"], spec["params"], STAGES[spec["name"]].kind
        start = time.perf_counter()
        if kind == StageKind.DOCS:
            progress().start(name, len(refs))
            refs = _gather(
                tasks.doc_stage.map(name, list(range(len(refs))), unmapped(params), refs, unmapped(cache_s)), name
            )
            summaries.append(
                _stage_summary(name, refs, time.perf_counter() - start, merge_stats(refs), artifacts=artifacts)
            )
            pii_done = pii_done or name == "pii"
            if name == "langid":  # rows rejected so far never met the language stage: label them too
                rejected_parts = {
                    part: Path(tasks.label_rejected_task(part, params, str(path), cache_s))
                    for part, path in rejected_parts.items()
                }
        elif kind == StageKind.DEDUP:
            progress().start(name, 2 * len(refs) + 1)
            sig_refs = _gather(
                tasks.dedup_signatures.map(list(range(len(refs))), unmapped(params), refs, unmapped(cache_s)), name
            )
            clusters = tasks.dedup_clusters(params, sig_refs, cache_s)
            progress().advance(name)
            refs = _gather(
                tasks.dedup_apply.map(list(range(len(refs))), refs, unmapped(clusters), unmapped(cache_s)), name
            )
            # this run's index (kept documents' signatures), so a later run can dedup against DIR
            if (Path(clusters["dir"]) / "index").is_dir():
                folder.publish_tree("dedup_index", Path(clusters["dir"]) / "index")
            summaries.append(
                _stage_summary(name, refs, time.perf_counter() - start, clusters.get("stats"), artifacts=artifacts)
            )
            if pii_done:
                clean_units.extend([*(r["dir"] for r in sig_refs), clusters["dir"]])
        elif kind in (StageKind.TOKENIZER, StageKind.SHARDS, StageKind.TRAIN) and not sum(r["docs_out"] for r in refs):
            # Every document was rejected: there is nothing to train on. The run still publishes its
            # documents and rejected rows, and says why these stages did not run.
            summaries.append(_stage_summary(name, [], 0.0, {"skipped": "no documents left"}, artifacts=artifacts))
            continue
        elif kind == StageKind.TOKENIZER:
            progress().start(name, 1)
            tok_ref = tasks.train_tokenizer_task(params, refs, cache_s)
            clean_units.append(tok_ref["dir"])
            folder.publish_tree("tokenizer", Path(tok_ref["dir"]))
            summaries.append(
                _stage_summary(name, [tok_ref], time.perf_counter() - start, tok_ref["stats"], artifacts=artifacts)
            )
        elif kind == StageKind.SHARDS:
            assert tok_ref is not None, "recipe validation puts a tokenizer before shards"
            progress().start(name, len(refs) + 2)
            split_ref = tasks.split_task(params, refs, cache_s)
            progress().advance(name)
            shard_refs = _gather(
                tasks.tokenize_task.map(
                    list(range(len(refs))),
                    unmapped(params),
                    refs,
                    unmapped(tok_ref),
                    unmapped(split_ref),
                    unmapped(cache_s),
                ),
                name,
            )
            extra_outputs["shards"] = _publish_shards(folder, shard_refs, tok_ref)
            metrics_ref = tasks.tokenizer_metrics_task(params, refs, tok_ref, split_ref, cache_s)
            clean_units.extend([split_ref["dir"], metrics_ref["dir"], *(r["dir"] for r in shard_refs)])
            extra_outputs["tokenizer_metrics"] = metrics_ref["stats"]
            progress().advance(name)
            summaries.append(
                _stage_summary(
                    name, shard_refs, time.perf_counter() - start, extra_outputs["shards"]["splits"], artifacts
                )
            )
        elif kind == StageKind.TRAIN:
            progress().start(name, params.get("steps", 1))
            train_ref = tasks.train_task(params, str(out_dir / "shards"), [r["key"] for r in shard_refs], cache_s)
            folder.publish_tree("model", Path(train_ref["dir"]))
            clean_units.append(train_ref["dir"])
            docs = sum(r["docs_out"] for r in shard_refs)
            train_ref.update(docs_in=docs, docs_out=docs, rejected=0)
            summaries.append(
                _stage_summary(name, [train_ref], time.perf_counter() - start, train_ref["stats"], artifacts=artifacts)
            )
        if kind in (StageKind.DOCS, StageKind.DEDUP):
            parts = {f"{name}-{r['index']:05d}.parquet": Path(r["dir"]) / "rejected.parquet" 
                     for r in refs if r["rejected"]}  # fmt: skip
            rejected_parts.update(parts)
            if not pii_done or name == "pii":
                raw_parts |= set(parts)
            if pii_done:
                clean_units.extend(r["dir"] for r in refs)

    # --- outputs ------------------------------------------------------------------------------
    if pii_params is not None:
        # Rows dropped before `pii` still hold their raw text: the same detection and policy redact them.
        rejected_parts = {
            part: Path(tasks.redact_rejected_task(part, pii_params, str(path), cache_s)) if part in raw_parts else path
            for part, path in rejected_parts.items()
        }
        clean_units.extend(str(p.parent) for p in rejected_parts.values())
    folder.publish_dir("documents", {f"part-{r['index']:05d}.parquet": Path(r["dir"]) / "docs.parquet" for r in refs})
    folder.publish_dir("rejected", rejected_parts)
    manifest["outputs"] = {
        "documents": sum(r["docs_out"] for r in refs),
        "rejected": sum(s["docs_rejected"] for s in summaries),
        **extra_outputs,
    }
    # Discovery warnings name files that ingest also rejects, so count each problem once.
    manifest["warnings"] = summaries[0]["docs_rejected"]
    manifest["status"] = "complete"

    # The report reads the run folder: an old model or tokenizer this recipe did not make must be gone first.
    folder.remove_stale(keep=("report",))
    report_spec = next((s for s in stages if s["name"] == "report"), None)
    if report_spec is not None:
        from pipeline.report import write_report

        start = time.perf_counter()
        progress().start("report", 1)
        docs = manifest["outputs"]["documents"]
        write_report(out_dir, manifest, STAGES["report"].config_cls()(**report_spec["params"]))
        folder.track("report")
        summaries.append(
            _stage_summary(
                "report", [{"docs_in": docs, "docs_out": docs}], time.perf_counter() - start, artifacts=artifacts
            )
        )
    if pii_params is not None and folder.owns_cache(cache):
        manifest["cache_pruned"] = prune_cache(cache, clean_units)
    folder.finish(manifest)
    artifacts.summary(manifest, str(out_dir))
    return manifest


def _redact_input_names(manifest: dict[str, Any], cfg: Any) -> None:
    """The manifest's file paths and discovery warnings through the ``pii`` stage's column redaction."""
    import polars as pl

    from pipeline.pii.columns import redact_columns

    def redacted(values: list[str]) -> list[str]:
        if not values:
            return values
        frame = pl.DataFrame({"source": ["other"] * len(values), "path": values})
        return redact_columns(frame, cfg)[0]["path"].to_list()

    for entry in manifest["inputs"]:
        files = entry["per_file"]
        for f, path in zip(files, redacted([f["path"] for f in files]), strict=True):
            f["path"] = path
        entry["inputs"] = redacted(entry["inputs"])
    manifest["discovery_warnings"] = redacted(manifest["discovery_warnings"])


def _input_fingerprints(inputs: list[list[Any]], refs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    import xxhash

    files = sorted((f for r in refs for f in (r.get("stats") or {}).get("files", [])), key=lambda f: f["path"])
    combined = xxhash.xxh3_128()
    for f in files:
        combined.update(f"{f['path']}\0{f['xxh3']}\n".encode())
    return [
        {
            "inputs": [f"{s}={p}" if s else p for s, p in inputs],
            "files": len(files),
            "bytes": sum(f["bytes"] for f in files),
            "fingerprint": combined.hexdigest(),
            "per_file": files,
        }
    ]


def _publish_shards(folder: RunFolder, shard_refs: list[dict[str, Any]], tok_ref: dict[str, Any]) -> dict[str, Any]:
    import xxhash

    parts = {}
    for r in shard_refs:
        for split in ("train", "val"):
            for name in r["stats"][split]["files"]:
                # "train-003.parquet" of shard 12 becomes "train-00012-003.parquet"
                parts[f"{split}-{r['index']:05d}-{name.split('-', 1)[1]}"] = Path(r["dir"]) / name
    names = dict(sorted(parts.items()))
    folder.publish_dir("shards", names, keep=("manifest.json",))
    splits: dict[str, Any] = {}
    for split in ("train", "val"):
        totals = merge_stats([{"stats": r["stats"][split]} for r in shard_refs])
        splits[split] = {
            "docs": totals.get("docs", 0),
            "tokens": totals.get("tokens", 0),
            "by_source": dict(sorted(totals.get("by_source", {}).items())),
            "bytes_by_source": dict(sorted(totals.get("bytes_by_source", {}).items())),
        }
    tok = tok_ref["stats"]
    shard_manifest = {
        "tokenizer": "../tokenizer/tokenizer.model",
        "tokenizer_fingerprint": tok["fingerprint"],
        "vocab_size": tok["vocab_size"],
        "bos_id": tok["bos_id"],
        "eos_id": tok["eos_id"],
        "pad_id": tok["pad_id"],
        "splits": splits,
        "files": {n: xxhash.xxh3_128_hexdigest((folder.root / "shards" / n).read_bytes()) for n in names},
    }
    folder.write_json("shards/manifest.json", shard_manifest)
    return shard_manifest
