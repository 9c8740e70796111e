"""CCNet-style line deduplication (stage ``"line_dedup"``).

Lines that recur in many documents of a batch (navigation menus, cookie banners, copyright
footers) are boilerplate: every occurrence is removed from the text, and the removals are counted.
Lines are compared after normalisation (lowercase, digits -> 0, whitespace collapsed), as in CCNet
(Wenzek et al. 2020). A document left with too little text is rejected.
"""

from __future__ import annotations

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from pipeline.bounds import MAX_DOC_CHARS, Int
from pipeline.schema import StageResult, to_rejected

STAGE = "line_dedup"


class LineDedupConfig(BaseModel):
    """Repeated-line removal settings."""

    model_config = ConfigDict(extra="forbid")

    min_docs: Int = Field(
        3, ge=2, le=2**31 - 1, description="a line is boilerplate when it occurs in at least this many documents"
    )
    min_line_chars: Int = Field(1, ge=1, le=MAX_DOC_CHARS, description="shorter (normalised) lines are never removed")
    sources: list[str] = Field(default_factory=lambda: ["web"])  # documents of other sources are untouched
    min_chars_left: Int = Field(1, ge=0, le=MAX_DOC_CHARS, description="documents with less text left are rejected")


def _norm_line(line: pl.Expr) -> pl.Expr:
    return line.str.to_lowercase().str.replace_all(r"\d", "0").str.replace_all(r"\s+", " ").str.strip_chars()


def remove_repeated_lines(df: pl.DataFrame, cfg: LineDedupConfig | None = None) -> StageResult:
    """Remove boilerplate lines from the documents of ``cfg.sources``; reject documents left empty."""
    cfg = cfg or LineDedupConfig()
    if df.is_empty():
        return StageResult(kept=df, stats={"lines_removed": 0, "chars_removed": 0, "docs_changed": 0})
    d = df.with_row_index("__ri")
    scope = d.filter(pl.col("source").is_in(cfg.sources))
    lines = (
        scope.select("__ri", pl.col("text").fill_null("").str.split("\n").alias("line"))
        .with_columns(pl.int_ranges(pl.col("line").list.len()).alias("__li"))
        .explode("line", "__li")
        .with_columns(_norm_line(pl.col("line")).alias("__n"))
    )
    lines = lines.with_columns(
        (
            (pl.col("__ri").n_unique().over("__n") >= cfg.min_docs)
            & (pl.col("__n").str.len_chars() >= cfg.min_line_chars)
        ).alias("__drop")
    )
    changed = (
        lines.filter(pl.col("__drop"))
        .group_by("__ri")
        .agg(pl.len().alias("__lines_removed"), pl.col("line").str.len_chars().sum().alias("__chars_removed"))
    )
    new_text = (
        lines.filter(~pl.col("__drop"))
        .sort("__ri", "__li")
        .group_by("__ri", maintain_order=True)
        .agg(pl.col("line").str.join("\n").alias("__new"))
    )
    d = (
        d.join(changed, on="__ri", how="left")
        .join(new_text, on="__ri", how="left")
        .with_columns(
            pl.when(pl.col("__lines_removed").is_not_null())
            .then(pl.col("__new").fill_null(""))
            .otherwise(pl.col("text"))
            .alias("text")
        )
        .sort("__ri")
    )
    too_short = pl.col("__lines_removed").is_not_null() & (
        pl.col("text").str.strip_chars().str.len_chars() < cfg.min_chars_left
    )
    cols = df.columns
    kept = d.filter(~too_short).select(cols)
    rej = d.filter(too_short).with_columns(
        pl.concat_str(pl.lit('{"lines_removed": '), pl.col("__lines_removed").cast(pl.String), pl.lit("}")).alias(
            "detail"
        )
    )
    stats = {
        "lines_removed": int(d["__lines_removed"].fill_null(0).sum()),
        "chars_removed": int(d["__chars_removed"].fill_null(0).sum()),
        "docs_changed": int(d["__lines_removed"].is_not_null().sum()),
    }
    return StageResult(kept=kept, rejected=to_rejected(rej, STAGE, "boilerplate_only"), stats=stats)
