"""Data side of an ablation: the held-out evaluation set, its removal from training data, data card figures.

Every arm is measured on one evaluation set, chosen once from the base-curated documents (whole
document groups, e.g. all parts of a book, per source) plus any evaluation-only inputs. Those
documents, and training documents that are near copies of them (a large share of word n-grams in
common), are removed from every arm's training data before the arms' own curation runs.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from pydantic import BaseModel

from pipeline.ids import stable_rank_key
from pipeline.schema import StageResult, to_rejected
from pipeline.shards import text_hash_expr
from pipeline.text import ngram_hashes

STAGE = "holdout"


def select_eval(docs: pl.DataFrame, fraction: float, min_docs: int, max_docs: int, seed: int) -> pl.DataFrame:
    """``id, source`` of the held-out documents: per source, the lowest-ranked groups under a seeded
    hash of the group id (``group_id``, else the document id), ``round(groups * fraction)`` of them,
    at least ``min_docs`` (when the source has twice as many) and at most ``max_docs``.

    Depends only on the ids present and the seed, not on file or row order.
    """
    group = pl.col("group_id").fill_null(pl.col("id")) if "group_id" in docs.columns else pl.col("id")
    groups = docs.select("source", group.alias("_g")).unique(["source", "_g"]).sort(["source", "_g"])
    groups = groups.with_columns(stable_rank_key(groups["_g"], seed).alias("_h"))
    groups = groups.with_columns(
        pl.col("_h").rank("ordinal").over("source").alias("_rank"), pl.len().over("source").alias("_n")
    )
    n_eval = pl.min_horizontal(
        pl.max_horizontal(
            (pl.col("_n") * fraction).round(0),
            pl.when(pl.col("_n") >= 2 * min_docs).then(pl.lit(min_docs)).otherwise(0),
        ),
        pl.lit(max_docs),
    )
    chosen = groups.filter(pl.col("_rank") <= n_eval).select("source", "_g")
    return (
        docs.select("id", "source", group.alias("_g"))
        .join(chosen, on=["source", "_g"], how="semi", maintain_order="left")
        .select("id", "source")
    )


class HoldoutConfig(BaseModel):
    ngram: int = 13
    max_overlap: float = 0.2


def holdout(df: pl.DataFrame, eval_ids: set[str], eval_ngrams: np.ndarray, cfg: HoldoutConfig) -> StageResult:
    """Remove the evaluation documents (``eval_document``) and training documents whose share of word
    n-grams found in the evaluation text is at least ``cfg.max_overlap`` (``eval_overlap``)."""
    is_eval = df["id"].is_in(sorted(eval_ids)).to_numpy() if eval_ids else np.zeros(df.height, bool)
    overlap = np.zeros(df.height, np.float64)
    if df.height and len(eval_ngrams):
        hv, counts = ngram_hashes(df["text"], cfg.ngram)
        hit = np.isin(hv, eval_ngrams)
        doc = np.repeat(np.arange(df.height), counts)
        matched = np.bincount(doc[hit], minlength=df.height)
        overlap = matched / np.maximum(counts, 1)
    near = ~is_eval & (overlap >= cfg.max_overlap)
    kept = df.filter(pl.Series(~is_eval & ~near))
    rejected = pl.concat(
        [
            to_rejected(df.filter(pl.Series(is_eval)), STAGE, "eval_document"),
            to_rejected(df.filter(pl.Series(near)), STAGE, "eval_overlap"),
        ],
        how="vertical_relaxed",
    )
    stats = {"eval_documents": int(is_eval.sum()), "eval_overlap": int(near.sum())}
    return StageResult(kept=kept, rejected=rejected, stats=stats)


def exact_duplicate_rate(docs: pl.DataFrame) -> float:
    """Share of documents whose whitespace- and case-normalised text repeats an earlier one's."""
    if not docs.height:
        return 0.0
    return float(1.0 - docs.select(text_hash_expr())["text_hash"].n_unique() / docs.height)


def weighted_token_sample(lists: pl.DataFrame, weights: dict[str, float], n_tokens: int, seed: int) -> np.ndarray:
    """``n_tokens`` tokens drawn from each source in proportion to its mixture weight (whole documents,
    seeded order): what the arm trains on, so mixtures with the same sources differ in entropy."""
    total = sum(w for s, w in weights.items() if w > 0) or 1.0
    parts = [
        token_sample(lists.filter(pl.col("source") == src)["tokens"], round(n_tokens * w / total), seed)
        for src, w in sorted(weights.items())
        if w > 0
    ]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def token_sample(token_lists: pl.Series, n_tokens: int, seed: int) -> np.ndarray:
    """Up to ``n_tokens`` tokens from whole documents in a seeded order, joined: the same-size sample
    for every arm, so n-gram entropies are comparable."""
    if not len(token_lists):
        return np.zeros(0, np.int64)
    order = pl.Series(np.random.default_rng(seed).permutation(len(token_lists)))
    shuffled = token_lists.gather(order)
    lens = shuffled.list.len().cast(pl.Int64)
    # whole documents until the one that reaches n_tokens, then cut to size
    needed = shuffled.filter(lens.cum_sum() - lens < n_tokens)
    return needed.explode().drop_nulls().cast(pl.Int64).to_numpy()[:n_tokens]
