"""PII redaction of every text-bearing column of a batch, not only ``text``: plain string columns whole, every
value of the ``meta``/``detail`` JSON with its key as context (``redact_columns``; rejected rows:
``redact_rejected``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import polars as pl
from presidio_analyzer import RecognizerResult

from pipeline.pii.config import PiiConfig
from pipeline.pii.find import (
    Candidates,
    Finding,
    any_candidate,
    apply_findings,
    candidates_of,
    findings_of,
    scan_groups,
)

# String columns that hold identities and labels, never free text: not scanned.
SKIPPED_COLUMNS = frozenset(
    {"id", "source", "stage", "lang", "group_id", "split", "duplicate_of", "pii_types", "orig_id"}
)
# String columns holding a JSON document: every string (and integer) value in them is scanned, with its key
# as context ("phone": 4155550132, "password": "..."), and the column stays valid JSON.
JSON_COLUMNS = frozenset({"meta", "detail"})
_JSON_ESCAPES = (r"\\u[0-9A-Fa-f]{4}", r"[0-9\-.][ \t]*\\[rn]")  # values the raw-JSON pre-check cannot read


@dataclass
class _Leaf:
    """One scanned JSON value: where it sits, and the text scanned for it ("key: \\"value\\"")."""

    row: int
    column: str
    parent: Any  # the dict or list holding it
    key: Any  # its key or index there
    text: str
    offset: int  # where the value starts in ``text``
    length: int


_MAX_DEPTH = 100  # JSON documents nested deeper are read as plain strings
# Values shorter than this hold no finding (the shortest: "a@b.co", "1.2.3.4", 7 phone digits, a 6-character
# password; the optional NER model reads ``text`` only): they are not scanned.
_SHORTEST = 6


def _walk(root: Any) -> list[tuple[Any, Any, str, Any]] | None:
    """(container, key, key context, value) of every string and integer value under ``root`` of at least
    ``_SHORTEST`` characters; None when ``root`` nests deeper than ``_MAX_DEPTH`` (read as a plain string
    then: writing it back as JSON could exceed the recursion limit). Iterative: no Python recursion."""
    out: list[tuple[Any, Any, str, Any]] = []
    stack: list[tuple[Any, str, int]] = [(root, "", 0)]
    while stack:
        node, context, depth = stack.pop()
        if depth > _MAX_DEPTH:
            return None
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for k, v in items:
            ctx = k if isinstance(k, str) else context  # list items read their list's key
            if isinstance(v, dict | list):
                stack.append((v, ctx, depth + 1))
            elif isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool)):
                if len(v if isinstance(v, str) else str(v)) >= _SHORTEST:
                    out.append((node, k, ctx, v))
    return out


def _leaf_text(context: str, value: str | int) -> tuple[str, int]:
    """The text a value is scanned as, and where the value starts in it: its key first, so that key-value
    recognizers and context words read it as they would in a document ("password": "...", "phone": ...)."""
    if not context:
        return str(value), 0
    if isinstance(value, str):
        return f'{context}: "{value}"', len(context) + 3
    return f"{context}: {value}", len(context) + 2


def _json_candidates(df: pl.DataFrame, column: str, applies: pl.Series, cfg: PiiConfig) -> list[int]:
    """Rows whose raw JSON in ``column`` may hold PII: any candidate pattern, view trigger or escape matches."""
    patterns = [any_candidate(tuple(cfg.entities)), *_JSON_ESCAPES]
    hit = df.select((applies & df[column].str.contains("|".join(f"(?:{p})" for p in patterns))).fill_null(False))
    return hit.to_series().arg_true().to_list()


def _json_leaves(
    df: pl.DataFrame, column: str, rows: list[int]
) -> tuple[list[_Leaf], dict[int, tuple[list[Any], bool]]]:
    """The scanned values of ``column`` in ``rows``, and each row's parsed document, wrapped in a one-item list
    so a bare top-level value can be replaced too, with whether it was JSON (rows that are not are scanned
    whole, as plain strings)."""
    leaves: list[_Leaf] = []
    docs: dict[int, tuple[list[Any], bool]] = {}
    for row, raw in zip(rows, df[column].gather(rows).to_list(), strict=True):
        try:
            doc, parsed = [json.loads(raw)], True
        except (TypeError, ValueError, RecursionError):
            doc, parsed = [raw], False
        found = _walk(doc)
        if found is None:  # too deep to write back safely: the raw string instead
            doc, parsed = [raw], False
            found = _walk(doc) or []
        docs[row] = (doc, parsed)
        for parent, key, ctx, value in found:
            text, offset = _leaf_text(ctx, value)
            leaves.append(_Leaf(row, column, parent, key, text, offset, len(str(value))))
    return leaves, docs


def _clipped(found: list[Finding], offset: int, length: int) -> list[Finding]:
    """Findings inside a value's part [offset, offset + length) of its scanned text, in the value's offsets."""
    out = []
    for r, plain in found:
        start, end = max(r.start, offset), min(r.end, offset + length)
        if start < end:
            out.append((RecognizerResult(r.entity_type, start - offset, end - offset, r.score), plain))
    return out


def _scattered(series: pl.Series, idx: list[int], values: list[Any]) -> pl.Series:
    """A copy of ``series`` with ``values`` at ``idx`` (``scatter`` works in place)."""
    out = series.clone()
    out.scatter(idx, values)
    return out


@dataclass
class _Redaction:
    frame: pl.DataFrame
    counts: dict[int, dict[str, int]]  # row -> entity type -> findings, rows with any
    by_column: dict[str, int]  # column -> findings
    scanned: int  # rows with a candidate in some column (handed to presidio)


def _add(counts: dict[int, dict[str, int]], by_column: dict[str, int], row: int, col: str, found: list) -> None:
    mine = counts.setdefault(row, {})
    for r, _ in found:
        mine[r.entity_type] = mine.get(r.entity_type, 0) + 1
    by_column[col] = by_column.get(col, 0) + len(found)


def redaction_of(df: pl.DataFrame, cfg: PiiConfig) -> _Redaction:
    """Every text-bearing column of ``df`` redacted under ``cfg``: plain string columns whole, JSON columns value
    by value. ``text`` is scored as a document of its row's source; the other columns of code rows as prose (a
    URL or a title is not code: bare numbers after "phone=" count, fixture IP ranges are not kept)."""
    n = df.height
    source = df["source"].fill_null("other") if "source" in df.columns else pl.Series(["other"] * n, dtype=pl.String)
    applies = source.is_in(cfg.apply_to_sources).fill_null(False)
    prose = source.replace("code", "web")
    columns = [c for c, t in df.schema.items() if t == pl.String and c not in SKIPPED_COLUMNS]
    plain = [c for c in columns if c not in JSON_COLUMNS and c != "text"]
    groups: list[tuple[Candidates, dict]] = []
    if "text" in columns:
        groups.append(candidates_of(df["text"], source, applies, cfg, ner=True))
    if plain:  # all small columns stacked into one group: position p is row p % n of column p // n
        stacked = pl.concat([df[c].alias("v") for c in plain])
        k = len(plain)
        groups.append(candidates_of(stacked, pl.concat([prose] * k), pl.concat([applies] * k), cfg, sieve=True))
    leaves: list[_Leaf] = []
    docs: dict[tuple[str, int], tuple[list[Any], bool]] = {}
    for c in (c for c in columns if c in JSON_COLUMNS):
        found_leaves, parsed = _json_leaves(df, c, _json_candidates(df, c, applies, cfg))
        leaves += found_leaves
        docs.update({(c, row): doc for row, doc in parsed.items()})
    if leaves:
        rows = [leaf.row for leaf in leaves]
        texts = pl.Series("v", [leaf.text for leaf in leaves], dtype=pl.String)
        groups.append(candidates_of(texts, prose.gather(rows), applies.gather(rows), cfg, sieve=True))
    results = scan_groups([g for g, _ in groups], cfg)
    found = [findings_of(g, res, maps) for (g, maps), res in zip(groups, results, strict=True)]

    counts: dict[int, dict[str, int]] = {}
    by_column: dict[str, int] = {}
    updates: dict[str, tuple[list[int], list[Any]]] = {}
    scanned: set[int] = set()
    g = 0
    if "text" in columns:
        _apply_column(df, "text", found[g], cfg, counts, by_column, updates)
        scanned.update(groups[g][0].rows)
        g += 1
    if plain:
        by_col: dict[str, dict[int, list[Finding]]] = {}
        for pos, f in found[g].items():
            by_col.setdefault(plain[pos // n], {})[pos % n] = f
        for c, f in by_col.items():
            _apply_column(df, c, f, cfg, counts, by_column, updates)
        scanned.update(pos % n for pos in groups[g][0].rows)
        g += 1
    if leaves:
        _apply_leaves(leaves, found[g], docs, cfg, counts, by_column, updates)
        scanned.update(leaves[pos].row for pos in groups[g][0].rows)
    frame = df.with_columns(_scattered(df[c], idx, vals) for c, (idx, vals) in updates.items()) if updates else df
    return _Redaction(frame, counts, by_column, len(scanned))


def _apply_column(
    df: pl.DataFrame,
    column: str,
    found: dict[int, list[Finding]],
    cfg: PiiConfig,
    counts: dict[int, dict[str, int]],
    by_column: dict[str, int],
    updates: dict[str, tuple[list[int], list[Any]]],
) -> None:
    """Replace the findings of a plain string column (rows of ``found`` only)."""
    if not found:
        return
    idx = sorted(found)
    old = df[column].gather(idx).to_list()
    updates[column] = (idx, [apply_findings(t, found[i], cfg) for i, t in zip(idx, old, strict=True)])
    for i in idx:
        _add(counts, by_column, i, column, found[i])


def _apply_leaves(
    leaves: list[_Leaf],
    found: dict[int, list[Finding]],
    docs: dict[tuple[str, int], tuple[list[Any], bool]],
    cfg: PiiConfig,
    counts: dict[int, dict[str, int]],
    by_column: dict[str, int],
    updates: dict[str, tuple[list[int], list[Any]]],
) -> None:
    """Replace the findings of JSON values in their parsed documents and write those documents back."""
    changed: dict[tuple[str, int], None] = {}
    for pos, f in sorted(found.items()):
        leaf = leaves[pos]
        mine = _clipped(f, leaf.offset, leaf.length)
        if not mine:
            continue
        value = str(leaf.parent[leaf.key])
        leaf.parent[leaf.key] = apply_findings(value, mine, cfg)
        _add(counts, by_column, leaf.row, leaf.column, mine)
        changed[(leaf.column, leaf.row)] = None
    for column, row in changed:
        idx, vals = updates.setdefault(column, ([], []))
        idx.append(row)
        doc, parsed = docs[(column, row)]
        vals.append(json.dumps(doc[0], ensure_ascii=False) if parsed else doc[0])


def redact_columns(df: pl.DataFrame, cfg: PiiConfig) -> tuple[pl.DataFrame, pl.Series]:
    """Every text-bearing column of ``df`` redacted with the detection and policy of the ``pii`` stage, and the
    findings per row (``pii_count``, all columns together).

    Scanned: every String column except identities and labels (``SKIPPED_COLUMNS``: id, source, stage, lang,
    group_id, split, duplicate_of, ...): ``text``, ``url``, ``path``, ``domain``, ``reason`` and any other; in
    ``meta`` and ``detail`` (JSON) every string and integer value, nested objects and lists included, each with
    its key as context; a JSON value with a finding becomes a string and the column stays valid JSON. Obfuscated
    and percent-encoded forms count (see ``pipeline.pii.recognizers.view_of``). Rows are never dropped here:
    types whose policy is "drop" get their placeholder. Rows whose source is not in ``apply_to_sources`` are
    left as they are.
    """
    red = redaction_of(df, cfg)
    per_row = [sum(red.counts[i].values()) if i in red.counts else 0 for i in range(df.height)]
    return red.frame, pl.Series("pii_count", per_row, dtype=pl.Int64)


def redact_rejected(df: pl.DataFrame, cfg: PiiConfig) -> pl.DataFrame:
    """A frame of ``REJECTED_SCHEMA`` rows with personal data redacted in ``text``, ``url``, ``path``,
    ``reason`` and every value of ``detail``, like ``redact_columns``; same rows, ids and columns. A rejected
    row cannot be dropped again, so types whose policy is "drop" are replaced by their placeholder."""
    return redact_columns(df, cfg)[0]
