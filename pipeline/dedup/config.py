"""Settings of the MinHash-LSH dedup stage (``DedupConfig``) and the LSH band choice they imply."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipeline.bounds import MAX_DOC_CHARS, MAX_MB, Float, Int, Seed, ZeroToOne, field_error

STAGE = "dedup"
KEEP_KEYS = ("quality", "length", "source", "id")
MAX_PERM = 4096  # MinHash permutations (and so bands, rows) at most


class DedupConfig(BaseModel):
    """Exact and near-duplicate removal settings."""

    model_config = ConfigDict(extra="forbid")

    exact: bool = True  # remove documents whose normalised text is identical
    url: bool = True  # web documents with the same (ingest-normalised) URL are duplicates too
    near: bool = True  # remove MinHash-LSH near duplicates
    threshold: Float = Field(0.8, gt=0.0, lt=1.0, description="Jaccard similarity the LSH bands are tuned for")
    # datasketch MinHash keeps num_perm hash values per document (4 or 8 bytes each).
    num_perm: Int = Field(128, ge=2, le=MAX_PERM)
    shingle: Literal["word", "char"] = "word"  # word n-grams (default) or character n-grams
    ngram: Int = Field(5, ge=1, le=1000, description="shingle size, in words or characters")
    seed: Seed = Field(1, description="MinHash permutation seed (datasketch's default)")
    # LSH bands x rows; None = minimise fp_weight * P(false positive) + fn_weight * P(false negative)
    # around ``threshold`` (datasketch's MinHashLSH optimiser). Set both to override.
    bands: Int | None = Field(None, ge=1, le=MAX_PERM)
    rows: Int | None = Field(None, ge=1, le=MAX_PERM)
    fp_weight: ZeroToOne = 0.5
    fn_weight: ZeroToOne = 0.5
    # Check every LSH candidate pair by the true Jaccard of its shingle sets (>= threshold).
    verify: bool = False
    min_words: Int = Field(5, ge=1, le=MAX_DOC_CHARS, description="shorter documents take part in exact dedup only")
    # Keeper within a cluster: highest quality score, then longest text, then source priority, then id.
    keep_order: list[str] = Field(default_factory=lambda: list(KEEP_KEYS))
    quality_column: str = "quality_score"  # document column read by the "quality" key (missing = null)
    source_priority: list[str] = Field(default_factory=lambda: ["book", "web", "code", "other"])
    # Earlier runs to deduplicate against: run folders (their dedup_index/) or index folders.
    # Their documents always win (they are already published) and are never removed here.
    against: list[str] = Field(default_factory=list)
    # Working memory (MiB) for clustering. The grouping keys stay in memory when they fit in half of
    # it, else they are spooled to disk in hash partitions that each fit, so memory does not grow
    # with the number of documents. ``partitions`` sets the partition count (and spools) by hand.
    memory_mb: Int = Field(64, ge=1, le=MAX_MB)
    partitions: Int | None = Field(None, ge=1, le=65_536, description="each one is a spool file per key kind")

    @field_validator("keep_order")
    @classmethod
    def _keys(cls, v: list[str]) -> list[str]:
        bad = [k for k in v if k not in KEEP_KEYS]
        if bad or len(set(v)) != len(v):
            raise ValueError(f"keep_order takes distinct keys among {KEEP_KEYS}, got {v}")
        if "id" not in v:
            v = [*v, "id"]  # ids are unique: the order is total, so the keeper is deterministic
        return v

    @model_validator(mode="after")
    def _bands_rows(self) -> DedupConfig:
        if (self.bands is None) != (self.rows is None):
            raise field_error("rows" if self.rows is None else "bands", "set both bands and rows, or neither", None)
        if self.bands is not None and self.rows is not None and self.bands * self.rows > self.num_perm:
            msg = f"bands * rows = {self.bands * self.rows} exceeds num_perm = {self.num_perm}"
            raise field_error("bands", msg, self.bands)
        # datasketch's MinHashLSH rule: only the ratio matters to the optimiser, so the pair sums to 1.
        if not math.isclose(self.fp_weight + self.fn_weight, 1.0):
            msg = f"fp_weight + fn_weight must be 1 (datasketch's rule), got {self.fp_weight} + {self.fn_weight}"
            raise field_error("fn_weight", msg, self.fn_weight)
        return self

    def band_params(self) -> tuple[int, int]:
        """(bands, rows) in use."""
        if self.bands is not None and self.rows is not None:
            return self.bands, self.rows
        return _optimal_bands(self.threshold, self.num_perm, self.fp_weight, self.fn_weight)

    def lsh_summary(self) -> dict[str, Any]:
        """The LSH parameters and their error probabilities, for the manifest."""
        b, r = self.band_params()
        fp, fn = _lsh_errors(self.threshold, b, r)
        return {
            "bands": b,
            "rows": r,
            "threshold": self.threshold,
            "num_perm": self.num_perm,
            "shingle": f"{self.ngram}-{self.shingle}",
            "chosen_by": "user" if self.bands is not None else "datasketch optimiser",
            "fp_weight": self.fp_weight,
            "fn_weight": self.fn_weight,
            "p_false_positive_area": round(fp, 5),
            "p_false_negative_area": round(fn, 5),
            "s_curve_midpoint": round((1 / b) ** (1 / r), 4),
        }


@lru_cache(maxsize=64)
def _optimal_bands(threshold: float, num_perm: int, fp_w: float, fn_w: float) -> tuple[int, int]:
    from datasketch.lsh import _optimal_param  # private, but it is the reference choice

    b, r = _optimal_param(threshold, num_perm, fp_w, fn_w)
    return int(b), int(r)


def _lsh_errors(threshold: float, b: int, r: int) -> tuple[float, float]:
    from datasketch.lsh import _false_negative_probability, _false_positive_probability

    return float(_false_positive_probability(threshold, b, r)), float(_false_negative_probability(threshold, b, r))
