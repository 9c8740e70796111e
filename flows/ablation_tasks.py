"""The ablation flow's own units of work: the shared evaluation set, holding it out of training data,
its tokens, and one arm's training folder. Each is a task over paths returning a ``UnitRef``, cached
through ``flows.tasks.run_unit`` like every other unit."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow.parquet as pq
from prefect import task

from flows.cache import make_key, unit_code
from flows.executor import merge_stats
from flows.tasks import TASK_OPTS, UnitRef, read_docs, run_unit, write_docs, write_json

DATA_CODE = "pipeline.ablation.data"


def read_columns(refs: list[UnitRef], columns: list[str]) -> pl.DataFrame:
    """``columns`` (those present) of the documents of ``refs``, one frame."""
    frames = []
    for r in refs:
        path = Path(r["dir"]) / "docs.parquet"
        have = pq.read_schema(path).names
        frames.append(pl.read_parquet(path, columns=[c for c in columns if c in have]))
    return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()


@task(name="ablation-eval-set", **TASK_OPTS)
def eval_set_task(
    eval_params: dict[str, Any], base_refs: list[UnitRef], extra: list[list[Any]], cache_dir: str
) -> UnitRef:
    """Choose the held-out documents: groups of each training source, plus up to ``max_docs_per_source``
    documents of each evaluation-only input (``extra``: [name, refs] pairs, relabelled to ``name``)."""
    from pipeline.ablation.data import ngram_hashes, select_eval

    key = make_key(
        unit_code(eval_set_task, DATA_CODE),
        "ablation-eval",
        eval_params,
        [r["key"] for r in base_refs],
        [[n, [r["key"] for r in rs]] for n, rs in extra],
    )

    def compute(staging: Path) -> dict[str, Any]:
        docs = read_columns(base_refs, ["id", "source", "group_id", "text"])
        chosen = select_eval(
            docs,
            eval_params["fraction"],
            eval_params["min_docs_per_source"],
            eval_params["max_docs_per_source"],
            eval_params["seed"],
        )
        held = docs.join(chosen.select("id"), on="id", how="semi", maintain_order="left").select("id", "source", "text")
        frames = [held]
        for name, refs in extra:
            other = read_columns(refs, ["id", "source", "group_id", "text"]).with_columns(pl.lit(name).alias("source"))
            pick = select_eval(other, 1.0 - 1e-9, 1, eval_params["max_docs_per_source"], eval_params["seed"])
            frames.append(
                other.join(pick.select("id"), on="id", how="semi", maintain_order="left").select("id", "source", "text")
            )
        eval_docs = pl.concat(frames, how="vertical_relaxed").sort(["source", "id"])
        hv, _ = ngram_hashes(eval_docs["text"], eval_params["ngram"])  # of whole documents: all held out
        if eval_params.get("max_doc_chars"):
            eval_docs = eval_docs.with_columns(pl.col("text").str.slice(0, eval_params["max_doc_chars"]))
        eval_docs.write_parquet(staging / "eval_docs.parquet", compression="zstd")
        np.save(staging / "ngrams.npy", np.unique(hv))
        by_source = eval_docs.group_by("source").agg(pl.len().alias("docs"), pl.col("text").str.len_bytes().sum())
        stats = {
            "docs": eval_docs.height,
            "by_source": {s: {"docs": int(d), "bytes": int(b)} for s, d, b in by_source.sort("source").iter_rows()},
            "eval_only_sources": [n for n, _ in extra],
            "eval_ids": held["id"].to_list(),
        }
        return {"docs_in": docs.height, "docs_out": eval_docs.height, "stats": stats}

    return run_unit(cache_dir, "ablation-eval", key, -1, compute)


@task(name="ablation-holdout", task_run_name="holdout-{index}", **TASK_OPTS)
def holdout_task(index: int, eval_params: dict, in_ref: UnitRef, eval_ref: UnitRef, cache_dir: str) -> UnitRef:
    """Remove the evaluation documents and near copies of them from one shard of training data."""
    from pipeline.ablation.data import HoldoutConfig, holdout

    cfg = HoldoutConfig(ngram=eval_params["ngram"], max_overlap=eval_params["max_overlap"])
    key = make_key(unit_code(holdout_task, DATA_CODE), "ablation-holdout", cfg, in_ref["key"], eval_ref["key"])

    def compute(staging: Path) -> dict[str, Any]:
        df = read_docs(in_ref)
        eval_ids = set(eval_ref["stats"]["eval_ids"])
        result = holdout(df, eval_ids, np.load(Path(eval_ref["dir"]) / "ngrams.npy"), cfg)
        return write_docs(staging, "ablation-holdout", index, result.kept, result.rejected, df.height, result.stats)

    return run_unit(cache_dir, "ablation-holdout", key, index, compute)


@task(name="ablation-eval-tokens", **TASK_OPTS)
def eval_tokens_task(eval_ref: UnitRef, tok_ref: UnitRef, cache_dir: str) -> UnitRef:
    """The evaluation set tokenized with one tokenizer: the ``val`` split every arm is scored on."""
    from pipeline.shards import ShardsConfig, tokenize_docs

    key = make_key(
        unit_code(eval_tokens_task, "pipeline.shards"), "ablation-eval-tokens", eval_ref["key"], tok_ref["key"]
    )

    def compute(staging: Path) -> dict[str, Any]:
        docs = pl.read_parquet(Path(eval_ref["dir"]) / "eval_docs.parquet")
        tokens = tokenize_docs(docs, Path(tok_ref["dir"]), ShardsConfig())
        tokens.write_parquet(staging / "val-000.parquet", compression="zstd")
        per = tokens.group_by("source").agg(pl.col("n_tokens").sum(), pl.col("n_bytes").sum()).sort("source")
        stats = {
            "tokens_by_source": {s: int(t) for s, t, _ in per.iter_rows()},
            "bytes_by_source": {s: int(b) for s, _, b in per.iter_rows()},
        }
        return {"docs_in": docs.height, "docs_out": docs.height, "stats": stats}

    return run_unit(cache_dir, "ablation-eval-tokens", key, -1, compute)


@task(name="ablation-data", **TASK_OPTS)
def arm_data_task(
    shard_refs: list[UnitRef], doc_refs: list[UnitRef], eval_tok_ref: UnitRef, tok_ref: UnitRef, cache_dir: str
) -> UnitRef:
    """One arm's training folder: its train token files, the shared val set and the tokenizer, in the
    layout ``model.train`` reads. Keyed by its inputs, so arms with the same data share it."""
    key = make_key(
        unit_code(arm_data_task), "ablation-data", [r["key"] for r in shard_refs], eval_tok_ref["key"], tok_ref["key"]
    )

    def compute(staging: Path) -> dict[str, Any]:
        n = 0
        for r in shard_refs:
            for name in r["stats"]["train"]["files"]:
                shutil.copyfile(Path(r["dir"]) / name, staging / f"train-{n:05d}.parquet")
                n += 1
        shutil.copyfile(Path(eval_tok_ref["dir"]) / "val-000.parquet", staging / "val-000.parquet")
        shutil.copyfile(Path(tok_ref["dir"]) / "tokenizer.model", staging / "tokenizer.model")
        tok = tok_ref["stats"]
        train_tokens = merge_stats([{"stats": r["stats"]["train"]} for r in shard_refs])
        docs = read_columns(doc_refs, ["source"])
        docs_by_source = dict(docs.group_by("source").len().sort("source").iter_rows()) if docs.height else {}
        manifest = {
            "tokenizer": "tokenizer.model",
            "tokenizer_fingerprint": tok["fingerprint"],
            "vocab_size": tok["vocab_size"],
            "bos_id": tok["bos_id"],
            "eos_id": tok["eos_id"],
            "pad_id": tok["pad_id"],
            "splits": {
                "train": {"tokens": train_tokens.get("tokens", 0), "by_source": train_tokens.get("by_source", {})},
                "val": {
                    "tokens": sum(eval_tok_ref["stats"]["tokens_by_source"].values()),
                    "by_source": eval_tok_ref["stats"]["tokens_by_source"],
                },
            },
        }
        write_json(staging / "manifest.json", manifest)
        stats = {
            "train_tokens": int(train_tokens.get("tokens", 0)),
            "tokens_by_source": {s: int(v) for s, v in sorted(train_tokens.get("by_source", {}).items())},
            "bytes_by_source": {s: int(v) for s, v in sorted(train_tokens.get("bytes_by_source", {}).items())},
            "docs_by_source": {s: int(v) for s, v in docs_by_source.items()},
            "files": n,
        }
        return {"docs_in": int(docs.height), "docs_out": int(docs.height), "stats": stats}

    return run_unit(cache_dir, "ablation-data", key, -1, compute)
