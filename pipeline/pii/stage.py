"""The ``pii`` stage: PII and secrets removal, on presidio-analyzer, offline (its no-op NLP engine: no model).

Found: e-mail addresses, phone numbers (libphonenumber, several regions), IPv4/IPv6 addresses, credit cards
(Luhn), IBANs (mod 97), US SSNs (presidio's recognizers), and, with Refinery's own presidio recognizers
(``pipeline/pii/recognizers.py``), cloud keys, GitHub/GitLab/Slack tokens, private-key blocks, JWTs,
``password=`` values and the ``user:pass`` of URLs.

Every text-bearing column is redacted, not only ``text``: ``url``, ``path``, ``domain`` and other strings
whole, every value of the ``meta``/``detail`` JSON with its key as context (``pipeline.pii.columns``). PII
written to escape recognizers ("jane [at] example [dot] com", "%40", a phone number broken across a line) is
read through a rewritten view of its string (``pipeline.pii.recognizers.view_of``).

Presidio is slow on long texts (the phone recognizer runs libphonenumber's matcher once per region over the
whole text), so the stage works in three steps:

1. a vectorised polars pass (``str.contains`` with one cheap, over-inclusive regex per entity type, and one
   per obfuscated form) picks the strings that may hold PII and, per string, the entity types worth looking
   for;
2. for those documents only, regexes locate candidate spans; each is padded and widened to whitespace, and
   per entity type the windows of all documents of the batch are joined into a few presidio calls;
3. results are mapped back to document offsets, re-scored with guards against known false positives
   (version numbers, dates, ISBNs, UUID/hex fragments, integer constants, netmasks, page ranges, ZIP+4,
   placeholder passwords), overlaps are resolved (specific types first, then score, then length) and spans
   are replaced under each type's policy: placeholder, mask, salted hash, or drop the document.

Where each part lives: ``pii_config`` (entity types, policies, ``PiiConfig``), ``pii_find`` (step 1, views,
the per-text API), ``pii_scan`` (step 2, presidio), ``pii_scoring`` (the guards and overlap resolution of
step 3), ``pii_columns`` (every column of a batch); this module decides which documents are dropped.
"""

from __future__ import annotations

import json
from typing import Any

import polars as pl

from pipeline.pii.columns import redaction_of
from pipeline.pii.config import PiiConfig
from pipeline.schema import StageResult, empty_rejected, to_rejected

STAGE = "pii"


def remove_pii(df: pl.DataFrame, cfg: PiiConfig) -> StageResult:
    """Replace PII in every text-bearing column (``pipeline.pii.columns.redact_columns``) under each type's
    policy; add ``pii_count`` (int, findings in all columns) and ``pii_types`` (JSON counts). Documents holding
    more than ``drop_above`` findings of "drop" types are rejected (every column redacted too, so ``rejected/``
    leaks nothing), with the counts in ``detail``.

    Stats: ``counts`` per entity type, ``by_source`` and ``by_column`` counts, ``docs_with_pii``,
    ``docs_dropped``, and ``docs_scanned`` (documents with a candidate in some column, handed to presidio).
    """
    n = df.height
    red = redaction_of(df, cfg)
    entities = list(cfg.entities)
    drop_types = {e for e in entities if cfg.policy_for(e) == "drop"}
    totals = {e: 0 for e in [*entities, *(cfg.ner_entities if cfg.ner_model else [])]}
    by_source: dict[str, dict[str, int]] = {}
    sources = df["source"].to_list() if "source" in df.columns else ["other"] * n
    idx = sorted(red.counts)
    dropped: list[int] = []
    for i in idx:
        counts = red.counts[i]
        if drop_types and sum(c for e, c in counts.items() if e in drop_types) > cfg.drop_above:
            dropped.append(i)
        src = by_source.setdefault(sources[i] or "other", {})
        for e, c in counts.items():
            totals[e] = totals.get(e, 0) + c
            src[e] = src.get(e, 0) + c

    count_col = pl.Series("pii_count", [0] * n, dtype=pl.Int64)
    types_col = pl.Series("pii_types", ["{}"] * n, dtype=pl.String)
    if idx:
        count_col.scatter(idx, [sum(red.counts[i].values()) for i in idx])
        types_col.scatter(idx, [json.dumps(red.counts[i], sort_keys=True) for i in idx])
    out = red.frame.with_columns(count_col, types_col)
    rejected = empty_rejected()
    if dropped:
        is_dropped = pl.Series("_drop", [False] * n).scatter(dropped, True)
        out = out.with_columns(is_dropped)
        reason = f"pii_above_{cfg.drop_above}"
        rejected = to_rejected(
            out.filter(pl.col("_drop")).with_columns(pl.col("pii_types").alias("detail")), STAGE, reason
        )
        out = out.filter(~pl.col("_drop")).drop("_drop")

    stats: dict[str, Any] = {
        "counts": totals,
        "docs_with_pii": len(idx),
        "docs_dropped": len(dropped),
        "by_source": {s: dict(sorted(c.items())) for s, c in sorted(by_source.items())},
        "by_column": dict(sorted(red.by_column.items())),
        "docs_scanned": red.scanned,
    }
    return StageResult(kept=out, rejected=rejected, stats=stats)
