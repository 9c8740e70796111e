"""Text normalisation: mojibake repair (ftfy), Unicode NFC, control characters, line endings, whitespace.

Every choice is a field of :class:`NormalizeConfig`, so the run's manifest (the recipe as run)
records which were applied.
"""

from __future__ import annotations

from typing import Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from pipeline.bounds import MAX_DOC_CHARS, Int
from pipeline.schema import StageResult, to_rejected

# C0/C1 control characters except tab and newline; also the BOM and NUL.
_CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufeff]"
# UTF-8 read as cp1252/latin-1 leaves a lead byte (Â-ï) before a continuation byte (0x80-0xBF,
# or its cp1252 glyph). Only documents matching this cheap test are handed to ftfy.
_CP1252_GLYPHS = "\u20ac\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039\u0152\u017d\u2018\u2019"
_CP1252_GLYPHS += "\u201c\u201d"
_CP1252_GLYPHS += "\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\u017e\u0178"
_MOJIBAKE_HINT = f"[\u00c2-\u00ef][\u0080-\u00bf{_CP1252_GLYPHS}]"


class NormalizeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Repair mojibake (UTF-8 decoded as cp1252/latin-1, "cafÃ©" -> "café") with ftfy.fix_encoding;
    # only the encoding is fixed: quotes, HTML entities and line breaks are left alone.
    fix_mojibake: bool = True
    unicode_form: Literal["NFC", "NFKC", "none"] = "NFC"
    strip_control: bool = True
    # CRLF/CR -> LF, trailing spaces on each line removed, 3+ blank lines collapsed to 2.
    normalize_whitespace: bool = True
    # Whitespace is meaningful in code: only line endings and control characters are touched there.
    preserve_code_whitespace: bool = True
    min_chars: Int = Field(
        1, ge=0, le=MAX_DOC_CHARS, description="documents shorter after normalisation are rejected (1: empty ones)"
    )


def _fix_mojibake(df: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """ftfy on the documents that look like mojibake; returns the frame and how many changed."""
    import ftfy

    suspect = df["text"].str.contains(_MOJIBAKE_HINT).fill_null(False)
    if not suspect.any():
        return df, 0
    idx = suspect.arg_true()
    before = df["text"].gather(idx)
    after = pl.Series([ftfy.fix_encoding(t) for t in before.to_list()], dtype=pl.String)
    changed = int((before != after).sum())
    return df.with_columns(df["text"].scatter(idx, after)), changed


def normalize(df: pl.DataFrame, cfg: NormalizeConfig) -> StageResult:
    fixed = 0
    if cfg.fix_mojibake and len(df):
        df, fixed = _fix_mojibake(df)
    text = pl.col("text")
    if cfg.unicode_form != "none":
        text = text.str.normalize(cfg.unicode_form)
    text = text.str.replace_all("\r\n?", "\n")
    if cfg.strip_control:
        text = text.str.replace_all(_CONTROL, "")
    if cfg.normalize_whitespace:
        prose = text.str.replace_all(r"[ \t\u00a0]+\n", "\n").str.replace_all(r"\n{3,}", "\n\n").str.strip_chars()
        if cfg.preserve_code_whitespace:
            text = pl.when(pl.col("source") == "code").then(text).otherwise(prose)
        else:
            text = prose
    out = df.with_columns(text.alias("text"))
    too_short = out["text"].str.strip_chars().str.len_chars() < cfg.min_chars
    rejected = to_rejected(out.filter(too_short), "normalize", "empty_after_normalize")
    return StageResult(kept=out.filter(~too_short), rejected=rejected, stats={"mojibake_fixed": fixed})
