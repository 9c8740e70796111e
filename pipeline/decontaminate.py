"""Decontamination against evaluation text (stage ``"decontaminate"``).

Documents that share long word n-grams (13 by default, as in GPT-3's and Llama's contamination
checks) with validation/evaluation text the user names are removed, or flagged with a
``contamination_ngrams`` column, so that ablation results measured on that text are not inflated.
Texts are normalised as for MinHash shingles (lowercase, punctuation dropped, whitespace
collapsed) and n-grams compared by 64-bit hash (``pipeline.text.ngram_hashes``); an evaluation text
shorter than ``ngram`` words counts as one n-gram (the whole text).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from pipeline.bounds import Int
from pipeline.schema import StageResult, to_rejected
from pipeline.text import ngram_hashes

STAGE = "decontaminate"


class DecontaminateConfig(BaseModel):
    """Evaluation-overlap removal settings."""

    model_config = ConfigDict(extra="forbid")

    # Evaluation text: files (.txt one text per file, .jsonl/.jsonl.gz with "text", .parquet with
    # "text") or folders of them, plus literal texts.
    eval_paths: list[str] = Field(default_factory=list)
    eval_texts: list[str] = Field(default_factory=list)
    ngram: Int = Field(13, ge=3, le=1000, description="word n-gram length (GPT-3 used 13)")
    min_matches: Int = Field(1, ge=1, le=1_000_000, description="shared n-grams that make a document contaminated")
    action: Literal["remove", "flag"] = "remove"

    def files_read(self) -> list[Path]:
        """The evaluation files this config reads (their content is part of the stage's cache key); a
        missing path is left to the stage, which says so."""
        files: list[Path] = []
        for p in self.eval_paths:
            q = Path(p)
            files += sorted(f for f in q.rglob("*") if f.is_file()) if q.is_dir() else [q] if q.is_file() else []
        return files


def _read_eval(path: Path) -> list[str]:
    name = path.name
    if name.endswith((".jsonl", ".jsonl.gz")):
        import gzip

        opener = gzip.open if name.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
        return [str(r.get("text") or r.get("content") or "") for r in rows]
    if name.endswith(".parquet"):
        return pl.read_parquet(path, columns=["text"])["text"].fill_null("").to_list()
    return [path.read_text(encoding="utf-8", errors="replace")]


def _eval_files(paths: tuple[str, ...]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        q = Path(p)
        if q.is_dir():
            out += sorted(f for f in q.rglob("*") if f.is_file())
        elif q.is_file():
            out.append(q)
        else:
            raise FileNotFoundError(f"decontaminate: evaluation path {p} not found")
    return out


@lru_cache(maxsize=8)
def _eval_ngrams(paths: tuple[str, ...], stamps: tuple[float, ...], texts: tuple[str, ...], n: int) -> np.ndarray:
    """Sorted unique 64-bit n-gram hashes of the evaluation texts (cached per file set and mtimes)."""
    del stamps  # part of the cache key only
    all_texts = [t for f in _eval_files(paths) for t in _read_eval(f)] + list(texts)
    if not all_texts:
        return np.empty(0, np.uint64)
    hv, _ = ngram_hashes(pl.Series(all_texts, dtype=pl.String), n)
    return np.unique(hv)


def eval_ngrams(cfg: DecontaminateConfig) -> np.ndarray:
    """Sorted unique 64-bit n-gram hashes of ``cfg``'s evaluation files and texts."""
    files = _eval_files(tuple(cfg.eval_paths))
    stamps = tuple(f.stat().st_mtime for f in files)
    return _eval_ngrams(tuple(cfg.eval_paths), stamps, tuple(cfg.eval_texts), cfg.ngram)


def decontaminate(df: pl.DataFrame, cfg: DecontaminateConfig | None = None) -> StageResult:
    """Count each document's n-grams found in the evaluation text; remove (or flag) the documents
    with at least ``min_matches``."""
    cfg = cfg or DecontaminateConfig()
    ref = eval_ngrams(cfg)
    matches = np.zeros(df.height, dtype=np.int64)
    if df.height and len(ref):
        hv, counts = ngram_hashes(df["text"], cfg.ngram)
        hit = np.isin(hv, ref)
        doc = np.repeat(np.arange(df.height), counts)
        matches = np.bincount(doc[hit], minlength=df.height).astype(np.int64)
    bad = matches >= cfg.min_matches
    stats = {"contaminated": int(bad.sum()), "eval_ngrams": int(len(ref)), "action": cfg.action}
    if cfg.action == "flag":
        return StageResult(kept=df.with_columns(pl.Series("contamination_ngrams", matches)), stats=stats)
    mask = pl.Series(bad)
    rej = df.filter(mask).with_columns(
        pl.concat_str(
            pl.lit('{"matched_ngrams": '), pl.lit(pl.Series(matches[bad])).cast(pl.String), pl.lit("}")
        ).alias("detail")
    )
    return StageResult(kept=df.filter(~mask), rejected=to_rejected(rej, STAGE, "eval_overlap"), stats=stats)
