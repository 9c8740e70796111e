"""Text normalisation: Unicode NFC, control characters, line endings, stray whitespace."""

from __future__ import annotations

from typing import Literal

import polars as pl
from pydantic import BaseModel, ConfigDict

from pipeline.schema import StageResult, to_rejected

# C0/C1 control characters except tab and newline; also the BOM and NUL.
_CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufeff]"


class NormalizeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    unicode_form: Literal["NFC", "NFKC", "none"] = "NFC"
    strip_control: bool = True
    # CRLF/CR -> LF, trailing spaces on each line removed, 3+ blank lines collapsed to 2.
    normalize_whitespace: bool = True
    # Whitespace is meaningful in code: only line endings and control characters are touched there.
    preserve_code_whitespace: bool = True
    min_chars: int = 1  # documents empty after normalisation are rejected


def normalize(df: pl.DataFrame, cfg: NormalizeConfig) -> StageResult:
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
    return StageResult(kept=out.filter(~too_short), rejected=rejected)
