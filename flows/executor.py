"""The one execution core: runs a recipe's stages over shards, for the curation and the ablation flow.

A stage kind is dispatched here and only here (``Executor.stage``). Each step is a task of
``flows.tasks`` over paths, returning a ``UnitRef``; inside a Prefect flow mapped steps run as
concurrent task runs, outside one (tests, scripts) as plain calls. The executor keeps what a run
has made so far in a ``Curation``: the current document units, the rejected parts with the rules
that hold for all of them (labelled with a language once language ID runs, redacted of personal data
before they are published), the tokenizer, the token shards and the units whose text is free of
personal data.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flows import tasks
from flows.progress import progress
from flows.stages import STAGES, StageKind
from flows.tasks import UnitRef

NO_DOCUMENTS = "no documents left"  # why tokenizer, shards and train did not run


@dataclass
class StageRun:
    """One stage's work in a run: its output units, figures and where its rejected rows are."""

    name: str
    refs: list[UnitRef]
    seconds: float
    stats: dict[str, Any] | None = None
    rejected: dict[str, Path] = field(default_factory=dict)  # part name -> rejected.parquet

    def summary(self) -> dict[str, Any]:
        """The stage's entry in a manifest (``stages[]``)."""
        summary: dict[str, Any] = {
            "name": self.name,
            "docs_in": sum(r.get("docs_in", 0) for r in self.refs),
            "docs_out": sum(r.get("docs_out", 0) for r in self.refs),
            "docs_rejected": sum(r.get("rejected", 0) for r in self.refs),
            "seconds": round(self.seconds, 3),
            "shards": len(self.refs),
            "cached_shards": sum(bool(r.get("cached")) for r in self.refs),
            # Where each shard's output lives, so `refinery inspect` can compare a stage's input and output.
            "units": [{"index": r.get("index", -1), "dir": r["dir"]} for r in self.refs if "dir" in r],
        }
        if self.stats is not None:
            summary["stats"] = self.stats
        return summary


@dataclass
class Curation:
    """What a run has made so far; ``Executor.stage`` moves it on by one stage."""

    docs: list[UnitRef]  # the current document units, one per shard
    rejected: dict[str, Path] = field(default_factory=dict)  # every rejected part so far, by part name
    raw_parts: set[str] = field(default_factory=set)  # parts made before (or by) `pii`: still to redact
    pii_done: bool = False  # the text of every unit made from here on is free of personal data
    clean_units: list[str] = field(default_factory=list)  # unit folders made after `pii`
    tokenizer: UnitRef | None = None
    split: UnitRef | None = None
    shards: list[UnitRef] = field(default_factory=list)
    tokenizer_metrics: UnitRef | None = None
    dedup_index: Path | None = None  # this run's dedup index folder, for later runs' `against`
    train_dir: str | None = None  # the token files a `train` stage reads (set by the flow)
    model: UnitRef | None = None

    def add_rejected(self, stage: str, refs: list[UnitRef]) -> dict[str, Path]:
        parts = {
            f"{stage}-{r['index']:05d}.parquet": Path(r["dir"]) / "rejected.parquet" for r in refs if r["rejected"]
        }
        self.rejected.update(parts)
        if not self.pii_done:  # `pii`'s own rejected rows are redacted by the stage itself
            self.raw_parts |= set(parts)
        return parts

    @property
    def documents(self) -> int:
        return sum(r["docs_out"] for r in self.docs)


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


def _in_flow() -> bool:
    from prefect.context import FlowRunContext

    return FlowRunContext.get() is not None


class Executor:
    """Runs stages over the work cache at ``cache``; every step is a cached unit (``flows.tasks``)."""

    def __init__(self, cache: Path | str) -> None:
        self.cache = str(cache)

    # --- calling tasks ---------------------------------------------------------------------------

    def call(self, task: Any, *args: Any) -> Any:
        """Run a task: as a task run inside a flow, as a plain function outside one."""
        return task(*args) if _in_flow() else task.fn(*args)

    def map(self, task: Any, arg_lists: list[tuple], stage: str) -> list[Any]:
        """Run a task over argument tuples (concurrently on the flow's task runner inside a flow),
        advancing ``stage``'s progress as each finishes; results in argument order."""
        if not _in_flow():
            results = []
            for args in arg_lists:
                results.append(task.fn(*args))
                progress().advance(stage)
            return results
        from prefect.futures import wait

        futures = [task.submit(*args) for args in arg_lists]
        pending = list(futures)
        while pending:
            done, not_done = wait(pending, timeout=0.5)
            if done:
                progress().advance(stage, len(done))
            pending = list(not_done)
        return [f.result() for f in futures]

    # --- stages ----------------------------------------------------------------------------------

    def ingest(self, inputs: list[list[Any]], params: dict[str, Any]) -> tuple[Curation, StageRun, list[str]]:
        """Discover ``inputs`` ([source or None, path] pairs), cut them into shards and read them;
        returns the new curation, the ingest stage and discovery's warnings."""
        from pipeline.ingest import discover
        from pipeline.ingest.grouping import group_files

        start = time.perf_counter()
        cfg = STAGES["ingest"].config_cls()(**params)
        files, warnings = discover([(s, p) for s, p in inputs])
        groups = group_files(files, int(cfg.shard_mb * 1_000_000), cfg.max_files_per_shard, cfg.max_file_mb << 20)
        params = cfg.model_dump(mode="json")
        progress().start("ingest", len(groups))
        args = [(i, [f.to_dict() for f in g], params, self.cache) for i, g in enumerate(groups)]
        refs = self.map(tasks.ingest_shard, args, "ingest")
        state = Curation(docs=refs)
        run = StageRun("ingest", refs, time.perf_counter() - start)
        run.rejected = state.add_rejected("ingest", refs)
        return state, run, warnings

    def stage(self, spec: dict[str, Any], state: Curation) -> StageRun:
        """Run the recipe stage ``spec`` ({"name", "params"}) on ``state``, moving it on."""
        name, params = spec["name"], spec["params"]
        kind = STAGES[name].kind
        start = time.perf_counter()
        if kind in (StageKind.TOKENIZER, StageKind.SHARDS, StageKind.TRAIN) and not state.documents:
            # Every document was rejected: there is nothing to train on; say why these stages did not run.
            return StageRun(name, [], 0.0, {"skipped": NO_DOCUMENTS})
        if kind == StageKind.DOCS:
            run = self._documents(name, params, state)
        elif kind == StageKind.DEDUP:
            run = self._dedup(name, params, state)
        elif kind == StageKind.TOKENIZER:
            progress().start(name, 1)
            state.tokenizer = self.call(tasks.train_tokenizer_task, params, state.docs, self.cache)
            state.clean_units.append(state.tokenizer["dir"])
            run = StageRun(name, [state.tokenizer], 0.0, state.tokenizer["stats"])
        elif kind == StageKind.SHARDS:
            run = self._shards(name, params, state)
        elif kind == StageKind.TRAIN:
            run = self._train(name, params, state)
        else:
            raise ValueError(f"stage {name!r} of kind {kind} does not run over shards")
        run.seconds = time.perf_counter() - start
        return run

    def _documents(self, name: str, params: dict[str, Any], state: Curation) -> StageRun:
        progress().start(name, len(state.docs))
        args = [(name, i, params, r, self.cache) for i, r in enumerate(state.docs)]
        refs = self.map(tasks.doc_stage, args, name)
        state.pii_done = state.pii_done or name == "pii"
        if name == "langid":  # rows rejected so far never met the language stage: label them too
            state.rejected = {
                part: Path(self.call(tasks.label_rejected_task, part, params, str(path), self.cache))
                for part, path in state.rejected.items()
            }
        return self._advance(name, refs, state, merge_stats(refs))

    def _dedup(self, name: str, params: dict[str, Any], state: Curation) -> StageRun:
        progress().start(name, 2 * len(state.docs) + 1)
        args = [(i, params, r, self.cache) for i, r in enumerate(state.docs)]
        sig_refs = self.map(tasks.dedup_signatures, args, name)
        clusters = self.call(tasks.dedup_clusters, params, sig_refs, self.cache)
        progress().advance(name)
        args = [(i, r, clusters, self.cache) for i, r in enumerate(state.docs)]
        refs = self.map(tasks.dedup_apply, args, name)
        index = Path(clusters["dir"]) / "index"
        state.dedup_index = index if index.is_dir() else None
        if state.pii_done:
            state.clean_units.extend([*(r["dir"] for r in sig_refs), clusters["dir"]])
        return self._advance(name, refs, state, clusters.get("stats"))

    def _advance(self, name: str, refs: list[UnitRef], state: Curation, stats: dict | None) -> StageRun:
        state.docs = refs
        run = StageRun(name, refs, 0.0, stats)
        run.rejected = state.add_rejected(name, refs)
        if state.pii_done:
            state.clean_units.extend(r["dir"] for r in refs)
        return run

    def _shards(self, name: str, params: dict[str, Any], state: Curation) -> StageRun:
        if state.tokenizer is None:
            raise ValueError("a shards stage needs a tokenizer stage before it")
        progress().start(name, len(state.docs) + 2)
        state.split = self.call(tasks.split_task, params, state.docs, self.cache)
        progress().advance(name)
        args = [(i, params, r, state.tokenizer, state.split, self.cache) for i, r in enumerate(state.docs)]
        state.shards = self.map(tasks.tokenize_task, args, name)
        state.tokenizer_metrics = self.call(
            tasks.tokenizer_metrics_task, params, state.docs, state.tokenizer, state.split, self.cache
        )
        progress().advance(name)
        state.clean_units.extend(
            [state.split["dir"], state.tokenizer_metrics["dir"], *(r["dir"] for r in state.shards)]
        )
        return StageRun(name, state.shards, 0.0, split_totals(state.shards))

    def _train(self, name: str, params: dict[str, Any], state: Curation) -> StageRun:
        if state.train_dir is None:
            raise ValueError("a train stage needs the run's token shards")
        progress().start(name, params.get("steps", 1))
        ref = self.train(params, state.train_dir, [r["key"] for r in state.shards])
        state.model = ref
        state.clean_units.append(ref["dir"])
        docs = sum(r["docs_out"] for r in state.shards)
        ref = UnitRef(**{**ref, "docs_in": docs, "docs_out": docs, "rejected": 0})
        return StageRun(name, [ref], 0.0, ref["stats"])

    def train(self, params: dict[str, Any], data_dir: str, data_keys: list[str]) -> UnitRef:
        """A model trained on the token files in ``data_dir`` (whose content ``data_keys`` name)."""
        return self.call(tasks.train_task, params, data_dir, data_keys, self.cache)

    def redact_rejected(self, state: Curation, pii_params: dict[str, Any]) -> None:
        """Rows dropped before `pii` still hold their raw text: the same detection and policy redact them."""
        state.rejected = {
            part: Path(self.call(tasks.redact_rejected_task, part, pii_params, str(path), self.cache))
            if part in state.raw_parts
            else path
            for part, path in state.rejected.items()
        }
        state.raw_parts = set()
        state.clean_units.extend(str(p.parent) for p in state.rejected.values())


def split_totals(shard_refs: list[UnitRef]) -> dict[str, Any]:
    """Documents, tokens and bytes per split and source over token shards."""
    splits: dict[str, Any] = {}
    for split in ("train", "val"):
        totals = merge_stats([{"stats": r["stats"][split]} for r in shard_refs])
        splits[split] = {
            "docs": totals.get("docs", 0),
            "tokens": totals.get("tokens", 0),
            "by_source": dict(sorted(totals.get("by_source", {}).items())),
            "bytes_by_source": dict(sorted(totals.get("bytes_by_source", {}).items())),
        }
    return splits
