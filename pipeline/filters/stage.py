"""The heuristic quality filter stage (``"filter"``): ``apply_filters(df, cfg) -> StageResult``.

Rule families (``FilterConfig.families``; each writes its statistics as columns, so ``refinery preview``
can try a threshold before it is applied): Gopher quality and repetition (Rae et al. 2021, appendix A),
C4 line removal and page rules (Raffel et al. 2020, section 2.2), FineWeb's rules (Penedo et al. 2024),
RefinedWeb line-wise corrections (Penedo et al. 2023, appendix G.2), book rules (ours), and code rules
following the StarCoder / The Stack preprocessing. ``definitions="datatrove"`` switches the Gopher and
FineWeb definitions to datatrove 0.10's reading, for like-for-like benchmarks. Every statistic is
computed with polars expressions over the whole batch (list ops, explode + group_by on a row index),
never with a per-document Python loop: that is where the throughput comes from.

The rules and statistics are declared in ``rules.py``; see the package docstring for the other modules.
"""

from __future__ import annotations

import polars as pl

from pipeline.filters.blocklist import blocklist_reason
from pipeline.filters.code import meta_flags
from pipeline.filters.compute import compute, compute_stats
from pipeline.filters.config import GOPHER_STOP_WORDS, FilterConfig
from pipeline.filters.exprs import ROW
from pipeline.filters.rules import (
    FAMILIES,
    HIDDEN_STATS,
    RULE_NAMES,
    RULES,
    STAT_COLUMNS,
    STATISTICS,
    Family,
    active_rules,
    detail_expr,
    fail_expr,
)
from pipeline.schema import StageResult, to_rejected

__all__ = [
    "FAMILIES",
    "GOPHER_STOP_WORDS",
    "RULES",
    "RULE_NAMES",
    "STAGE",
    "STATISTICS",
    "STAT_COLUMNS",
    "Family",
    "FilterConfig",
    "apply_filters",
    "compute_stats",
    "rule_failures",
    "rule_table",
]

STAGE = "filter"


def apply_filters(df: pl.DataFrame, cfg: FilterConfig | None = None) -> StageResult:
    """Keep documents passing every enabled rule; reject the rest with the first failing rule.

    Kept rows carry the stat columns (to preview other thresholds later without recomputing) and,
    with C4 or RefinedWeb line removal on, the rewritten text. Rejected rows keep the text as it came
    in, and ``detail`` holds the statistic that failed, e.g. ``{"gopher_word_count": 23}``.
    """
    cfg = cfg or FilterConfig()
    if not cfg.enabled:
        return StageResult(kept=df, rejected=to_rejected(df.clear(), STAGE, ""), stats={"dropped_by_rule": {}})
    rules = active_rules(cfg)
    s = compute(df, cfg)
    reasons = [pl.when(fail_expr(r)).then(pl.lit(r.reason)) for r in rules]
    details = [pl.when(fail_expr(r)).then(detail_expr(r)) for r in rules]
    if cfg.blocklist is not None:
        block = blocklist_reason(s, cfg.blocklist)
        reasons.insert(0, block)
        details.insert(0, pl.when(block.is_not_null()).then(pl.lit(None, dtype=pl.String)))
    none = pl.lit(None, dtype=pl.String)
    s = s.with_columns(
        (pl.coalesce(reasons) if reasons else none).alias("__reason"),
        (pl.coalesce(details) if details else none).alias("__detail"),
    )
    s = s.drop(*HIDDEN_STATS, ROW)
    kept = s.filter(pl.col("__reason").is_null()).drop("__reason", "__detail", "__orig_text")
    bad = s.filter(pl.col("__reason").is_not_null())
    counts = dict(bad.group_by("__reason").len().iter_rows())
    order = list(dict.fromkeys([*counts.keys()] if not rules else [r.reason for r in rules] + sorted(counts)))
    dropped = {k: int(counts[k]) for k in order if k in counts}
    bad = bad.drop("reason", "detail", "text", strict=False).rename(
        {"__reason": "reason", "__detail": "detail", "__orig_text": "text"}
    )
    rejected = to_rejected(bad, STAGE)
    return StageResult(kept=kept, rejected=rejected, stats={"dropped_by_rule": dropped})


def rule_table(cfg: FilterConfig | None = None) -> list[dict[str, object]]:
    """The enabled rules as plain records (name, stat, op, threshold, family), for previews and reports."""
    return [
        {
            "name": r.name,
            "stat": r.stat,
            "op": r.op,
            "threshold": r.threshold,
            "family": r.family,
            "only_source": r.only_source,
            "skip_source": r.skip_source,
        }
        for r in active_rules(cfg or FilterConfig())
    ]


def rule_failures(stats: pl.DataFrame, cfg: FilterConfig | None = None) -> pl.DataFrame:
    """One boolean column per enabled rule name: does the row fail it? ``stats`` is ``compute_stats``
    output. Rules sharing a name (the book/non-book word-count bound) are or-ed."""
    cfg = cfg or FilterConfig()
    # compute_stats does not keep the code reader's meta flags (not statistics of the text): read them again
    flags = [f for f in meta_flags(stats.columns) if f.meta.output_name() not in stats.columns]
    if flags and "code" in cfg.families:
        stats = stats.with_columns(pl.when(pl.col("source").is_in(cfg.apply_code_to)).then(f) for f in flags)
    by_name: dict[str, pl.Expr] = {}
    for r in active_rules(cfg):
        e = fail_expr(r)
        by_name[r.name] = by_name[r.name] | e if r.name in by_name else e
    return stats.select([e.alias(n) for n, e in by_name.items()])
