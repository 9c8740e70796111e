"""Perplexity filter in the style of CCNet (stage ``"perplexity"``).

CCNet (Wenzek et al. 2020, section 3.3) scores each document with a 5-gram KenLM model trained on
Wikipedia and splits each language into head / middle / tail thirds by perplexity percentiles. We do
the same with a small KenLM-free model: a word bigram LM with interpolated absolute discounting
(D = 0.75, unigram backoff with add-one smoothing) whose counts live in hashed numpy tables, trained
on reference text (WikiText) by ``train_lm`` and shipped as ``pipeline/models/ppl_bigram.npz`` (its
training-data fingerprint and the bucket cut-offs are stored inside). Scoring is vectorised: tokens
are exploded with polars, hashed, and looked up with numpy.

Bucket cut-offs are fixed numbers (from the model file, calibrated on the 33rd / 66th percentiles of
a sample, as CCNet did), never per-shard percentiles: a document's bucket cannot depend on sharding.
``perplexity`` and ``ppl_bucket`` are columns of kept rows; rejected rows carry them in ``detail``.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipeline import MODELS_DIR
from pipeline.bounds import MAX_DOC_CHARS, Float, Int, field_error
from pipeline.schema import StageResult, to_rejected

STAGE = "perplexity"
DEFAULT_LM = MODELS_DIR / "ppl_bigram.npz"
_TOKEN = r"\w+|[^\w\s]"
_UNI, _BI = 1 << 18, 1 << 20
_MULT = np.uint64(0x9E3779B97F4A7C15)


Perplexity = Annotated[Float, Field(ge=1.0)]


class PerplexityConfig(BaseModel):
    """Keep documents whose perplexity bucket is listed (CCNet labels all three; recipes drop the tail)."""

    model_config = ConfigDict(extra="forbid")

    model: str = "builtin"  # "builtin" = pipeline/models/ppl_bigram.npz, or a path written by train_lm
    keep_buckets: list[str] = Field(default_factory=lambda: ["head", "middle", "tail"])
    # Perplexity is exp(entropy): never below 1, so neither is a cut-off.
    cutoffs: dict[str, tuple[Perplexity, Perplexity]] = Field(
        default_factory=dict,
        description="per-source [head/middle, middle/tail] perplexity cut-offs; missing sources use the model's own",
    )
    max_perplexity: Perplexity | None = Field(None, description="an absolute bound on top of the buckets")
    apply_to: list[str] = Field(default_factory=lambda: ["web", "book", "other"])
    max_chars: Int = Field(20_000, ge=1, le=MAX_DOC_CHARS, description="characters scored (the head of long documents)")

    def files_read(self) -> list[Path]:
        """A user's model file (part of the stage's cache key; the shipped one is part of its code)."""
        return [] if self.model == "builtin" else [Path(self.model)]

    @model_validator(mode="after")
    def _ordered(self) -> PerplexityConfig:
        for source, (lo, hi) in self.cutoffs.items():
            if lo > hi:
                raise field_error("cutoffs", f"{source}: head/middle cut-off {lo} is above middle/tail {hi}", [lo, hi])
        return self


def _tokens(df: pl.DataFrame, max_chars: int) -> pl.DataFrame:
    """(row, token hash) for every token, with a sentence-start marker (hash 0) before each document."""
    t = (
        df.with_row_index("__r")
        .select("__r", pl.col("text").fill_null("").str.slice(0, max_chars).str.to_lowercase().str.extract_all(_TOKEN))
        .explode("text")
        .filter(pl.col("text").is_not_null())
        .select("__r", pl.col("text").hash(seed=7).alias("h"))
    )
    return t


def _bigram_ids(prev: np.ndarray, cur: np.ndarray) -> np.ndarray:
    return ((prev * _MULT) ^ cur) % np.uint64(_BI)


def train_lm(texts: list[str], out: Path, calibrate: list[str] | None = None) -> dict:
    """Count unigrams / bigrams of ``texts`` into hashed tables; cut-offs = 33rd / 66th percentile
    perplexity of ``calibrate`` (default: ``texts``)."""
    df = pl.DataFrame({"text": texts})
    t = _tokens(df, 10**9)
    h = t["h"].to_numpy()
    r = t["__r"].to_numpy()
    prev = np.concatenate([[0], h[:-1]]).astype(np.uint64)
    prev[np.concatenate([[True], r[1:] != r[:-1]])] = 0  # document start
    uni = np.bincount((h % _UNI).astype(np.int64), minlength=_UNI).astype(np.uint32)
    ctx = np.bincount((prev % _UNI).astype(np.int64), minlength=_UNI).astype(np.uint32)
    bid = _bigram_ids(prev, h.astype(np.uint64)).astype(np.int64)
    bi = np.bincount(bid, minlength=_BI).astype(np.uint32)
    # distinct followers per context (for the backoff weight)
    first = np.unique(bid, return_index=True)[1]
    types = np.bincount((prev[first] % _UNI).astype(np.int64), minlength=_UNI).astype(np.uint32)
    fingerprint = hashlib.sha256("\x00".join(texts).encode("utf-8")).hexdigest()
    tables = {"uni": uni, "ctx": ctx, "bi": bi, "types": types}
    ppl = _perplexities(tables, pl.DataFrame({"text": calibrate or texts}), 20_000)
    lo, hi = (float(x) for x in np.percentile(ppl, [33.3, 66.7]))
    meta = {"training_data_sha256": fingerprint, "tokens": int(len(h)), "documents": len(texts), "cutoffs": [lo, hi]}
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **tables, meta=np.array(json.dumps(meta)))
    _load.cache_clear()
    return meta


@lru_cache(maxsize=4)
def _load(path: str) -> tuple[dict[str, np.ndarray], dict]:
    z = np.load(path)
    return {k: z[k] for k in ("uni", "ctx", "bi", "types")}, json.loads(str(z["meta"]))


def _perplexities(tables: dict[str, np.ndarray], df: pl.DataFrame, max_chars: int) -> np.ndarray:
    t = _tokens(df, max_chars)
    h = t["h"].to_numpy().astype(np.uint64)
    r = t["__r"].to_numpy()
    out = np.full(df.height, np.nan)
    if len(h) == 0:
        return out
    prev = np.concatenate([[0], h[:-1]]).astype(np.uint64)
    prev[np.concatenate([[True], r[1:] != r[:-1]])] = 0
    uni, ctx, bi, types = (tables[k].astype(np.float64) for k in ("uni", "ctx", "bi", "types"))
    d = 0.75
    p_uni = (uni[(h % _UNI).astype(np.int64)] + 1.0) / (uni.sum() + _UNI)
    c_ctx = ctx[(prev % _UNI).astype(np.int64)]
    c_bi = bi[_bigram_ids(prev, h).astype(np.int64)]
    n_types = types[(prev % _UNI).astype(np.int64)]
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(
            c_ctx > 0,
            np.maximum(c_bi - d, 0.0) / c_ctx + d * n_types / np.maximum(c_ctx, 1.0) * p_uni,
            p_uni,
        )
    logp = np.log(np.maximum(p, 1e-12))
    sums = np.bincount(r, weights=logp, minlength=df.height)
    counts = np.bincount(r, minlength=df.height)
    has = counts > 0
    out[has] = np.exp(-sums[has] / counts[has])
    return out


def perplexity(df: pl.DataFrame, model: str = "builtin", max_chars: int = 20_000) -> np.ndarray:
    path = DEFAULT_LM if model == "builtin" else Path(model)
    if not path.is_file():
        raise FileNotFoundError(f"perplexity LM not found: {path} (train one with `refinery train-lm`)")
    tables, _ = _load(str(path))
    return _perplexities(tables, df, max_chars)


def filter_perplexity(df: pl.DataFrame, cfg: PerplexityConfig | None = None) -> StageResult:
    cfg = cfg or PerplexityConfig()
    path = DEFAULT_LM if cfg.model == "builtin" else Path(cfg.model)
    ppl = perplexity(df, cfg.model, cfg.max_chars)
    _, meta = _load(str(path))
    default_lo, default_hi = meta["cutoffs"]
    lo = pl.col("source").replace_strict({k: v[0] for k, v in cfg.cutoffs.items()}, default=default_lo)
    hi = pl.col("source").replace_strict({k: v[1] for k, v in cfg.cutoffs.items()}, default=default_hi)
    p = pl.col("perplexity")
    s = df.with_columns(pl.Series("perplexity", ppl, dtype=pl.Float64).fill_nan(None)).with_columns(
        pl.when(p.is_null())
        .then(pl.lit(None, dtype=pl.String))
        .when(p <= lo.cast(pl.Float64))
        .then(pl.lit("head"))
        .when(p <= hi.cast(pl.Float64))
        .then(pl.lit("middle"))
        .otherwise(pl.lit("tail"))
        .alias("ppl_bucket")
    )
    judged = pl.col("source").is_in(cfg.apply_to) & p.is_not_null()
    reason = pl.when(judged & ~pl.col("ppl_bucket").is_in(cfg.keep_buckets)).then(
        pl.format("ppl_bucket_{}", pl.col("ppl_bucket"))
    )
    if cfg.max_perplexity is not None:
        reason = reason.when(judged & (p > cfg.max_perplexity)).then(pl.lit(f"perplexity>{cfg.max_perplexity}"))
    s = s.with_columns(reason.otherwise(pl.lit(None, dtype=pl.String)).alias("__reason"))
    kept = s.filter(pl.col("__reason").is_null()).drop("__reason")
    bad = s.filter(pl.col("__reason").is_not_null()).with_columns(
        pl.concat_str(
            [
                pl.lit('{"perplexity": '),
                p.round(3).cast(pl.String),
                pl.lit(', "ppl_bucket": "'),
                pl.col("ppl_bucket"),
                pl.lit('"}'),
            ]
        ).alias("detail")
    )
    rejected = to_rejected(bad.drop("reason", strict=False).rename({"__reason": "reason"}), STAGE)
    counts = dict(bad.group_by("__reason").len().iter_rows()) if bad.height else {}
    buckets = dict(s.group_by("ppl_bucket").len().drop_nulls().iter_rows())
    return StageResult(
        kept=kept,
        rejected=rejected,
        stats={
            "dropped_by_rule": {k: int(v) for k, v in sorted(counts.items())},
            "buckets": {k: int(buckets.get(k, 0)) for k in ("head", "middle", "tail")},
        },
    )
