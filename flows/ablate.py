"""The ablation flow: curate each arm of a plan, train it with several seeds, evaluate every model on
one shared held-out set, and write results, statistics and a report.

Stages run through ``flows.executor``, the same core as the curation flow. Arms share the work cache
of ``flows.cache``: a stage unit is keyed by its input's key, its config and its code, so two arms
whose curation starts with the same stages (or the same arm at several token budgets) compute those
stages once. Only the data varies between arms: the base curation, the evaluation set, the tokenizer
(unless a quality level names its own), the model and the training settings are the same, and token
budgets match unless the scale axis sets them.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
from prefect import flow

import pipeline
from flows import tasks
from flows.ablation_plan import AblationPlan, Arm, PlanError, load_plan, parse_plan
from flows.ablation_tasks import arm_data_task, eval_set_task, eval_tokens_task, holdout_task, read_columns
from flows.cache import clean_staging, code_version, make_key
from flows.executor import Curation, Executor, StageRun, merge_stats
from flows.run_folder import RunFolder, check_run_folder, lock_cache
from flows.runners import task_runner
from flows.stages import STAGES

Say = Callable[[str], None]
# Every arm's documents go to training: the evaluation set is held out before the arms' curation.
ALL_TRAIN = {"val_fraction": 0.0, "min_val_docs_per_source": 0, "decontaminate_val": False}
ENTROPY_SAMPLE_TOKENS = 50_000


def sample_inputs() -> list[list[Any]]:
    """The project's own small corpus (its corpus folders; ``_src/`` holds the authored sources)."""
    root = Path(pipeline.__file__).resolve().parent.parent / "sample_data"
    return [[None, str(root / d)] for d in ("web", "books", "code", "misc")]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- curation --------------------------------------------------------------------------------


def _summary(run: StageRun) -> dict[str, Any]:
    """A stage's summary in ``summary.json``, with its rejected files (read for the drop tables)."""
    summary = run.summary()
    summary.setdefault("stats", merge_stats(run.refs))
    return {**summary, "rejected_files": [str(p) for p in run.rejected.values()]}


def run_doc_stages(executor: Executor, stages: list[dict[str, Any]], state: Curation) -> list[dict[str, Any]]:
    """Apply document and dedup stages in order, moving ``state`` on; a summary per stage."""
    return [_summary(executor.stage(spec, state)) for spec in stages]


def _curated(executor: Executor, inputs: list[list[Any]], stages: list[dict[str, Any]]) -> tuple[Curation, list, str]:
    """Ingest ``inputs`` with the default settings and run ``stages``: the state, those stages' summaries
    and a key naming the ingested input."""
    state, ingest_run, _ = executor.ingest(inputs, {})
    input_key = make_key("ablation-inputs", [r["key"] for r in ingest_run.refs])
    return state, run_doc_stages(executor, stages, state), input_key


# --- budgets and training ----------------------------------------------------------------------


def _mixture(arm: Arm, tokens_by_source: dict[str, int], min_tokens: int) -> tuple[dict[str, float], list[str]]:
    """Source weights for an arm, and sources left out for having too few tokens to cut one window.

    Natural shares (each source in proportion to its available tokens) unless the arm sets weights;
    leave-one-out drops one source and keeps the others' natural shares.
    """
    small = sorted(s for s, n in tokens_by_source.items() if n < min_tokens)
    if arm.weights is not None:
        weights = {s: float(w) for s, w in arm.weights.items() if w > 0}
        missing = sorted(s for s in weights if s not in tokens_by_source or s in small)
        if missing:
            raise PlanError(
                f"arm {arm.name!r}: mixture names source(s) {', '.join(missing)} with too little or no data "
                f"after curation (sources with data: {', '.join(s for s in tokens_by_source if s not in small)})"
            )
        return weights, small
    if arm.exclude and arm.exclude not in tokens_by_source:
        raise PlanError(
            f"arm {arm.name!r}: leaves out source {arm.exclude!r}, which has no data after curation "
            f"(sources: {', '.join(sorted(tokens_by_source))})"
        )
    weights = {s: float(n) for s, n in tokens_by_source.items() if s not in small and s != arm.exclude}
    if not weights:
        raise PlanError(f"arm {arm.name!r}: no source has enough tokens to train on")
    return weights, small


def _available(weights: dict[str, float], tokens_by_source: dict[str, int]) -> int:
    """Training tokens the mixture can draw before any source repeats (one epoch of the scarcest)."""
    total_w = sum(weights.values())
    return int(min(tokens_by_source[s] / (w / total_w) for s, w in weights.items()))


def _train_params(plan: AblationPlan, steps: int, seed: int, weights: dict[str, float]) -> dict[str, Any]:
    """One training run's TrainConfig: the plan's settings, with steps, warmup, eval points, seed and mixture
    set for this arm and seed."""
    t = plan.train
    shared = t.model_dump(exclude={"warmup_fraction", "evals", "max_epochs"})
    cfg = STAGES["train"].config_cls()(
        **shared,
        steps=steps,
        warmup_steps=math.ceil(t.warmup_fraction * steps),
        eval_every=max(1, steps // t.evals),
        seed=seed,
        mixture={"weights": weights, "max_epochs": t.max_epochs},
    )
    return cfg.model_dump(mode="json")


# --- results -----------------------------------------------------------------------------------


def _result_rows(arm: Arm, seed: int, metrics: dict[str, Any], tokens_per_step: int) -> list[dict[str, Any]]:
    rows = []
    base = {"arm": arm.name, **{f"level_{a}": v for a, v in arm.levels.items()}, "seed": seed}
    for rec in metrics.get("val", []):
        step = int(rec["step"])
        per_bpb = rec.get("per_source_bpb") or {}
        for source, loss in sorted(rec["per_source"].items()):
            rows.append(
                {
                    **base,
                    "split": "val",
                    "source": source,
                    "step": step,
                    "tokens": step * tokens_per_step,
                    "loss": float(loss),
                    "bpb": per_bpb.get(source),
                }
            )
        rows.append(
            {
                **base,
                "split": "val",
                "source": "all",
                "step": step,
                "tokens": step * tokens_per_step,
                "loss": float(rec["loss"]),
                "bpb": rec.get("bpb"),
            }
        )
    for rec in metrics.get("train", []):
        step = int(rec["step"])
        rows.append(
            {
                **base,
                "split": "train",
                "source": "all",
                "step": step,
                "tokens": step * tokens_per_step,
                "loss": float(rec["loss"]),
                "bpb": None,
            }
        )
    return rows


def _generations(plan: AblationPlan, model_dir: Path) -> list[dict[str, str]]:
    import sentencepiece as spm

    from model.generate import GenerationConfig, sample_text
    from model.load import load_model

    net, _ = load_model(model_dir)
    sp = spm.SentencePieceProcessor(model_file=str(model_dir / "tokenizer.model"))
    g = plan.generation
    out = []
    for prompt in g.prompts:
        cfg = GenerationConfig(
            max_new_tokens=g.max_new_tokens,
            temperature=g.temperature,
            top_p=g.top_p,
            seed=g.seed,
            greedy=g.temperature == 0,
        )
        out.append({"prompt": prompt, "text": sample_text(net, sp, prompt, cfg)})
    return out


def _drops(summaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rejected documents by stage, reason and source, read from the stage units' rejected files."""
    frames = [pl.read_parquet(f, columns=["stage", "reason", "source"]) for s in summaries for f in s["rejected_files"]]
    if not frames:
        return []
    counts = pl.concat(frames, how="vertical_relaxed").group_by("stage", "reason", "source").len()
    order = {s["name"]: i for i, s in enumerate(summaries)}
    rows = [dict(zip(("stage", "reason", "source", "docs"), r, strict=True)) for r in counts.iter_rows()]
    return sorted(rows, key=lambda r: (order.get(r["stage"], 99), -r["docs"], str(r["reason"]), str(r["source"])))


def _diversity(
    data_ref: dict[str, Any],
    weights: dict[str, float],
    doc_refs: list[dict[str, Any]],
    summaries: list[dict[str, Any]],
    sample_tokens: int,
    vocab_size: int,
) -> dict[str, Any]:
    from pipeline.ablation.data import exact_duplicate_rate, weighted_token_sample
    from pipeline.ablation.stats import ngram_entropy, shannon_entropy

    used = sorted(s for s, w in weights.items() if w > 0)  # a left-out source is not in the arm's data
    files = sorted(Path(data_ref["dir"]).glob("train-*.parquet"))
    lists = (
        pl.scan_parquet(files).select("source", "tokens").filter(pl.col("source").is_in(used)).collect()
        if files
        else pl.DataFrame(schema={"source": pl.String, "tokens": pl.List(pl.Int64)})
    )
    sample = weighted_token_sample(lists, weights, sample_tokens, seed=0)
    # dedup may run in the shared base curation or in the arm's own stages: count both
    dedups = [s for s in summaries if s["name"] == "dedup"]
    dedup_in = dedups[0]["docs_in"] if dedups else 0
    docs = read_columns(doc_refs, ["source", "text"]).filter(pl.col("source").is_in(used))
    return {
        "source_entropy_bits": shannon_entropy(list(weights.values())),
        "unigram_entropy_bits": ngram_entropy(sample, 1, vocab_size),
        "bigram_entropy_bits": ngram_entropy(sample, 2, vocab_size),
        "entropy_sample_tokens": int(len(sample)),
        "dedup_removed_rate": sum(s["docs_rejected"] for s in dedups) / dedup_in if dedup_in else None,
        "exact_duplicate_rate": exact_duplicate_rate(docs),
    }


# --- the run -----------------------------------------------------------------------------------


def run_ablation(
    plan: AblationPlan,
    inputs: list[list[Any]],
    out: str | Path,
    eval_inputs: list[list[Any]] | None = None,
    cache_dir: str | Path | None = None,
    say: Say = _stderr,
) -> dict[str, Any]:
    """Run ``plan`` over ``inputs`` ([source or None, path] pairs) into ``out``; returns the summary
    (also written to ``out/summary.json``, last: the commit point) after ``results.parquet`` and ``report/``.
    Raises ``flows.run_folder.RunFolderError`` (touching nothing) when ``out`` is not a folder it may write."""
    out_dir = Path(out)
    cache = str(Path(cache_dir) if cache_dir else out_dir / "cache")
    every_input = [p for _, p in inputs] + [p for _, p in eval_inputs or []]
    folder = check_run_folder(out_dir, cache_dir, every_input, kind="ablation")
    folder.claim(Path(cache))
    cache_lock = None
    try:
        cache_lock = lock_cache(Path(cache))
        clean_staging(Path(cache))
        return _run_ablation(plan, inputs, folder, eval_inputs, cache, say)
    finally:
        if cache_lock is not None:
            cache_lock.release()
        folder.release()


def _run_ablation(
    plan: AblationPlan,
    inputs: list[list[Any]],
    folder: RunFolder,
    eval_inputs: list[list[Any]] | None,
    cache: str,
    say: Say,
) -> dict[str, Any]:
    from pipeline.ablation.analysis import analyse
    from pipeline.ablation.report import write_ablation_report

    started = time.perf_counter()
    out_dir = folder.root
    eval_params = plan.eval.model_dump(mode="json")

    say(f"ablation {plan.name}: ingest and base curation")
    executor = Executor(cache)
    base, base_summaries, input_key = _curated(executor, inputs, plan.curation)
    extra = []
    for name, path in eval_inputs or []:
        eval_state, _, _ = _curated(executor, [[None, path]], plan.curation)
        extra.append([name, eval_state.docs])
    eval_ref = executor.call(eval_set_task, eval_params, base.docs, extra, cache)
    args = [(i, eval_params, r, eval_ref, cache) for i, r in enumerate(base.docs)]
    held = executor.map(holdout_task, args, "holdout")
    holdout_run = StageRun("holdout", held, 0.0)
    holdout_run.rejected = base.add_rejected("holdout", held)
    base.docs = held
    base_summaries.append(_summary(holdout_run))
    sources = sorted(read_columns(held, ["source"])["source"].unique().to_list())
    arms = plan.arms(sources)
    baseline = plan.baseline_arm(arms)
    say(f"{len(arms)} arms x {len(plan.seeds)} seeds; eval set: {eval_ref['stats']['by_source']}")

    shared_tok = executor.call(tasks.train_tokenizer_task, plan.tokenizer, held, cache)
    eval_tok = {shared_tok["key"]: executor.call(eval_tokens_task, eval_ref, shared_tok, cache)}
    shards_spec = {"name": "shards", "params": STAGES["shards"].config_cls()(**ALL_TRAIN).model_dump(mode="json")}

    # Curate and tokenize every arm first: the shared token budget depends on what each arm has.
    built: dict[str, dict[str, Any]] = {}
    for arm in arms:
        state = copy.deepcopy(base)
        arm_summaries = run_doc_stages(executor, arm.stages, state)
        arm_refs = state.docs
        if not state.documents:
            raise PlanError(f"arm {arm.name!r}: curation left no documents")
        if arm.tokenizer is None:
            state.tokenizer = shared_tok
        else:
            executor.stage({"name": "tokenizer", "params": arm.tokenizer}, state)
        tok = state.tokenizer
        if tok["key"] not in eval_tok:
            eval_tok[tok["key"]] = executor.call(eval_tokens_task, eval_ref, tok, cache)
        executor.stage(shards_spec, state)
        data = executor.call(arm_data_task, state.shards, arm_refs, eval_tok[tok["key"]], tok, cache)
        min_tokens = 2 * (plan.train.seq_len + 1)
        weights, small = _mixture(arm, data["stats"]["tokens_by_source"], min_tokens)
        built[arm.name] = {
            "refs": arm_refs,
            "summaries": arm_summaries,
            "tok": tok,
            "data": data,
            "weights": weights,
            "too_small": small,
            "available": _available(weights, data["stats"]["tokens_by_source"]),
        }
        say(
            f"  arm {arm.name}: {data['stats']['train_tokens']:,} train tokens, {len(weights)}"
            f" sources; stages cached {sum(s['cached_shards'] for s in arm_summaries)}/"
            f"{sum(s['shards'] for s in arm_summaries)} shards"
        )

    tokens_per_step = plan.train.batch_size * plan.train.grad_accum * plan.train.seq_len
    # Scale 1 = the plan's tokens, else what the scarcest arm can give without repeating data.
    fixed = [b["available"] for a, b in zip(arms, built.values(), strict=True) if a.tokens is None]
    base_tokens = plan.tokens or min(fixed or [b["available"] for b in built.values()])
    rows: list[dict[str, Any]] = []
    arm_cards = []
    for arm in arms:
        b = built[arm.name]
        budget = arm.tokens if arm.tokens is not None else int(round((arm.fraction or 1.0) * base_tokens))
        steps = max(1, round(budget / tokens_per_step))
        models = []
        for seed in plan.seeds:
            params = _train_params(plan, steps, seed, b["weights"])
            t0 = time.perf_counter()
            ref = executor.train(params, b["data"]["dir"], [b["data"]["key"]])
            metrics = _load_json(Path(ref["dir"]) / "metrics.json")
            rows += _result_rows(arm, seed, metrics, tokens_per_step)
            models.append(
                {
                    "seed": seed,
                    "key": ref["key"],
                    "dir": ref["dir"],
                    "cached": ref["cached"],
                    "final_val_loss": metrics.get("final_val_loss"),
                    "final_val_bpb": metrics.get("final_val_bpb"),
                    "seconds": metrics.get("seconds"),
                    "mixture": metrics.get("mixture"),
                }
            )
            say(
                f"  train {arm.name} seed {seed}: {steps} steps, bpb {metrics.get('final_val_bpb', float('nan')):.4f}"
                f"{' (cached)' if ref['cached'] else f' ({time.perf_counter() - t0:.0f}s)'}"
            )
        vocab = b["tok"]["stats"]["vocab_size"]
        sample = min(ENTROPY_SAMPLE_TOKENS, min(x["data"]["stats"]["train_tokens"] for x in built.values()))
        arm_cards.append(
            {
                "name": arm.name,
                "slug": arm.slug,
                "levels": arm.levels,
                "stages": arm.stages,
                "tokenizer": arm.tokenizer or "shared",
                "budget_tokens": steps * tokens_per_step,
                "steps": steps,
                "weights": {s: w / sum(b["weights"].values()) for s, w in sorted(b["weights"].items())},
                "too_small_sources": b["too_small"],
                "data": b["data"]["stats"],
                "data_key": b["data"]["key"],
                "data_dir": b["data"]["dir"],
                "tokenizer_key": b["tok"]["key"],
                "tokenizer_fingerprint": b["tok"]["stats"]["fingerprint"],
                "stages_summary": [{k: v for k, v in s.items() if k != "rejected_files"} for s in b["summaries"]],
                "drops": _drops(base_summaries + b["summaries"]),
                "pii": next((s["stats"] for s in [*base_summaries, *b["summaries"]] if s["name"] == "pii"), None),
                "diversity": _diversity(
                    b["data"], b["weights"], b["refs"], base_summaries + b["summaries"], sample, vocab
                ),
                "models": models,
                "generations": _generations(plan, Path(models[0]["dir"])),
            }
        )

    results = pl.DataFrame(rows, infer_schema_length=None).with_columns(pl.col("bpb").cast(pl.Float64))
    folder.write("results.parquet", lambda tmp: results.write_parquet(tmp, compression="zstd", statistics=True))
    analysis = analyse(
        results,
        baseline=baseline.name,
        test=plan.test,
        alpha=plan.alpha,
        scale_axis="scale" if plan.axes.scale is not None else None,
    )
    summary = {
        "refinery_version": pipeline.__version__,
        "code_version": code_version(),
        "plan": plan.model_dump(mode="json"),
        "inputs": [f"{s}={p}" if s else p for s, p in inputs],
        "input_key": input_key,
        "eval_inputs": [f"{n}={p}" for n, p in eval_inputs or []],
        "baseline": baseline.name,
        "base_curation": [{k: v for k, v in s.items() if k != "rejected_files"} for s in base_summaries],
        "eval_set": {
            "key": eval_ref["key"],
            "by_source": eval_ref["stats"]["by_source"],
            "tokens_by_source": eval_tok[shared_tok["key"]]["stats"]["tokens_by_source"],
            "scored_tokens_per_source_max": plan.train.eval_batches * plan.train.batch_size * plan.train.seq_len,
        },
        "shared_tokenizer": {
            "key": shared_tok["key"],
            "fingerprint": shared_tok["stats"]["fingerprint"],
            "vocab_size": shared_tok["stats"]["vocab_size"],
        },
        "base_tokens": base_tokens,
        "tokens_per_step": tokens_per_step,
        "arms": arm_cards,
        "analysis": analysis,
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_ablation_report(out_dir, summary, results)
    folder.track("report")
    folder.finish(summary)
    say(f"report: {out_dir / 'report' / 'index.html'}")
    return summary


def _load_json(path: Path) -> dict[str, Any]:
    import json

    return json.loads(path.read_text())


def _publish_artifacts(summary: dict[str, Any], markdown: str) -> None:
    """The report's tables as Prefect artifacts (markdown and table), for the UI of a flow run."""
    import re

    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    key = re.sub(r"[^a-z0-9-]+", "-", f"ablation-{summary['plan']['name']}".lower()).strip("-")
    create_markdown_artifact(markdown=markdown, key=f"{key}-report", description="Ablation report")
    rows = [
        {k: (round(v, 5) if isinstance(v, float) else v) for k, v in r.items() if k != "seeds"}
        for r in summary["analysis"]["final"]
        if r["metric"] == "bpb"
    ]
    create_table_artifact(table=rows, key=f"{key}-bpb", description="Final validation bits per byte per arm and source")
    create_table_artifact(
        table=summary["analysis"]["comparisons"],
        key=f"{key}-comparisons",
        description=f"Arms against the baseline {summary['baseline']}",
    )


@flow(
    name="refinery-ablate",
    task_runner=task_runner(),
    validate_parameters=False,
)
def ablation_flow(
    plan: str | dict[str, Any] = "quality",
    inputs: list[list[Any]] | None = None,
    out: str = "runs/ablation",
    eval_inputs: list[list[Any]] | None = None,
    cache_dir: str | None = None,
) -> dict[str, Any]:
    """Run an ablation plan (a built-in name, a YAML path, or the plan as a mapping) over ``inputs``
    ([source or None, path] pairs; default: the sample data) and write ``out``; evaluation-only inputs
    are [name, path] pairs. Returns a short summary (the full one is ``out/summary.json``)."""
    parsed = parse_plan(plan) if isinstance(plan, dict) else load_plan(plan)
    pairs = inputs or sample_inputs()
    summary = run_ablation(parsed, pairs, out, eval_inputs, cache_dir)
    try:
        _publish_artifacts(summary, (Path(out) / "report" / "report.md").read_text())
    except Exception as err:  # noqa: BLE001 - artifacts are a view; the run's files are the record
        _stderr(f"could not publish Prefect artifacts: {err}")
    return {
        "out": out,
        "arms": [a["name"] for a in summary["arms"]],
        "baseline": summary["baseline"],
        "seconds": summary["seconds"],
    }
