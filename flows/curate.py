"""The curation flow: files -> documents -> tokenizer -> token shards -> model -> report.

Per-shard stages are mapped over shards as Prefect tasks; global steps (dedup clusters,
tokenizer, split, training) run once. Every task passes paths, and every unit of work is
cached by content (see ``flows.cache``), so a rerun resumes where a killed run stopped.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prefect import flow

import pipeline
from flows.artifacts import RunArtifacts
from flows.cache import clean_staging, code_version
from flows.executor import Executor, StageRun, split_totals
from flows.progress import progress
from flows.run_folder import RunFolder, check_run_folder, lock_cache, prune_cache
from flows.runners import task_runner
from flows.stages import STAGES, StageKind
from flows.tasks import UnitRef


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
    manifest: dict[str, Any] = {
        "refinery_version": pipeline.__version__,
        "code_version": code_version(),
        "recipe": recipe,
        "stages": [],
    }
    summaries = manifest["stages"]
    pii_params = next((s["params"] for s in stages if s["name"] == "pii"), None)

    def finished(run: StageRun) -> None:
        summary = run.summary()
        progress().finish(run.name, summary)
        artifacts.stage(summary)
        summaries.append(summary)

    executor = Executor(cache)
    state, ingest_run, warnings = executor.ingest(inputs, stages[0]["params"])
    finished(ingest_run)
    manifest["inputs"] = _input_fingerprints(inputs, ingest_run.refs)
    manifest["discovery_warnings"] = warnings
    if pii_params is not None:  # file names can hold personal data too (an e-mail as a folder name)
        _redact_input_names(manifest, STAGES["pii"].config_cls()(**pii_params))

    extra_outputs: dict[str, Any] = {}
    for spec in stages[1:]:
        if spec["name"] == "report":
            continue  # the report reads the finished run folder: written last
        state.train_dir = str(out_dir / "shards")
        run = executor.stage(spec, state)
        # What the run folder shows of the stage: the dedup index, tokenizer, token shards, model.
        kind = STAGES[run.name].kind
        if kind == StageKind.DEDUP and state.dedup_index is not None:
            folder.publish_tree("dedup_index", state.dedup_index)  # so a later run can dedup against DIR
        elif kind == StageKind.TOKENIZER and state.tokenizer is not None and run.refs:
            folder.publish_tree("tokenizer", Path(state.tokenizer["dir"]))
        elif kind == StageKind.SHARDS and run.refs:
            extra_outputs["shards"] = _publish_shards(folder, state.shards, state.tokenizer)
            extra_outputs["tokenizer_metrics"] = state.tokenizer_metrics["stats"]
        elif kind == StageKind.TRAIN and state.model is not None and run.refs:
            folder.publish_tree("model", Path(state.model["dir"]))
        finished(run)

    # --- outputs ------------------------------------------------------------------------------
    if pii_params is not None:
        executor.redact_rejected(state, pii_params)
    folder.publish_dir(
        "documents", {f"part-{r['index']:05d}.parquet": Path(r["dir"]) / "docs.parquet" for r in state.docs}
    )
    folder.publish_dir("rejected", state.rejected)
    manifest["outputs"] = {
        "documents": state.documents,
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
        finished(StageRun("report", [UnitRef(docs_in=docs, docs_out=docs)], time.perf_counter() - start))
    if pii_params is not None and folder.owns_cache(cache):
        manifest["cache_pruned"] = prune_cache(cache, state.clean_units)
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

    by_path: dict[str, list[dict[str, Any]]] = {}
    for f in (f for r in refs for f in (r.get("stats") or {}).get("files", [])):
        by_path.setdefault(f["path"], []).append(f)
    files = []
    for path, entries in sorted(by_path.items()):
        # the parts of a file cut into several shards are one file here: its size, and a hash of its parts' hashes
        entries.sort(key=lambda f: f.get("part_start", 0))
        digest = entries[0]["xxh3"]
        if len(entries) > 1:
            digest = xxhash.xxh3_128_hexdigest("\n".join(str(f["xxh3"]) for f in entries).encode())
        files.append({"path": path, "bytes": entries[0]["bytes"], "xxh3": digest})
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
    splits = split_totals(shard_refs)
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
