"""PII removal: e-mail addresses, phone numbers, IP addresses and credit-card numbers -> placeholders.

Presidio does the recognition, but it is slow on long texts (the phone recognizer runs libphonenumber's
matcher once per region over the whole text). So the stage works in three steps:

1. a vectorised polars pass (``str.contains`` with one cheap, over-inclusive regex per entity type) picks
   the documents that may hold PII and, per document, the entity types worth looking for;
2. for those documents only, the same regexes locate candidate spans; each is padded and widened to
   whitespace, and presidio's ``analyze`` runs once per document on the joined windows, with only the
   recognizers whose pre-check matched;
3. results are mapped back to document offsets, re-scored with guards against known false positives
   (version numbers, dates, ISBNs, UUID/hex fragments, bare integer constants), overlaps are resolved
   (higher score, then longer span) and spans are replaced right to left.

The stage rewrites text and rejects nothing.
"""

from __future__ import annotations

import bisect
import json
import logging
import os
import re
from functools import lru_cache
from typing import Any

# tldextract (used by presidio's e-mail recognizer) would otherwise try to download the public suffix
# list; with no URLs it uses the snapshot bundled with the package. Must be set before importing presidio.
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

import polars as pl  # noqa: E402
from presidio_analyzer import AnalyzerEngine, RecognizerRegistry, RecognizerResult  # noqa: E402
from presidio_analyzer.nlp_engine import NlpEngineProvider  # noqa: E402
from presidio_analyzer.predefined_recognizers import (  # noqa: E402
    CreditCardRecognizer,
    EmailRecognizer,
    IpRecognizer,
    PhoneRecognizer,
)
from pydantic import BaseModel, ConfigDict, Field, model_validator  # noqa: E402

from pipeline.schema import SOURCES, StageResult, empty_rejected  # noqa: E402

STAGE = "pii"

SUPPORTED_ENTITIES = ("EMAIL_ADDRESS", "PHONE_NUMBER", "IP_ADDRESS", "CREDIT_CARD")

DEFAULT_PLACEHOLDERS = {
    "EMAIL_ADDRESS": "<EMAIL>",
    "PHONE_NUMBER": "<PHONE>",
    "IP_ADDRESS": "<IP>",
    "CREDIT_CARD": "<CREDIT_CARD>",
}

# Pre-check regexes: a superset of what presidio's recognizers can match, written in the syntax shared by
# Rust's regex crate (polars) and Python's ``re`` (window search), so both passes agree.
CANDIDATE_PATTERNS: dict[str, str] = {
    # a local-part character, "@", a domain label and a dot
    "EMAIL_ADDRESS": r"[\w!#$%&'*+/=?^`{|}~\-]@\w[\w\-]*\.\w",
    # >= 7 digits, separated by at most 3 of the characters phone numbers are written with
    "PHONE_NUMBER": r"\d(?:[ \t\u00a0().\-/]{0,3}\d){6,14}",
    # dotted quad, or an IPv6-ish run: "::" next to a hex group holding a digit, or >= 3 "hex:" groups
    "IP_ADDRESS": (
        r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|::[0-9A-Fa-f]*\d|\d[0-9A-Fa-f]*::|(?:[0-9A-Fa-f]{1,4}:){3,}[0-9A-Fa-f]"
    ),
    # 13-19 digits in presidio's card layout (4 groups, optional space/dash separators)
    "CREDIT_CARD": r"\d{4}[ \-]?\d{3,4}[ \-]?\d{3,4}[ \-]?\d{3,5}",
}
# Per-document window search (Python ``re``, candidate documents only): the same candidates split into
# alternatives that start at a rare literal where possible, since ``re`` has no inner-literal scan. They
# may start later inside the candidate (at "@", at a ":"); the window padding restores the rest.
_WINDOW_RES: dict[str, list[re.Pattern[str]]] = {
    "EMAIL_ADDRESS": [re.compile(r"@\w[\w\-]*\.\w")],
    "PHONE_NUMBER": [re.compile(CANDIDATE_PATTERNS["PHONE_NUMBER"])],
    "IP_ADDRESS": [
        re.compile(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}"),
        re.compile(r"::[0-9A-Fa-f]*\d"),
        re.compile(r"\d[0-9A-Fa-f]{0,3}::"),
        re.compile(r":[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]"),
    ],
    "CREDIT_CARD": [re.compile(CANDIDATE_PATTERNS["CREDIT_CARD"])],
}

# Window around a candidate handed to presidio: (pad, widen-to-whitespace limit) per entity type. The
# e-mail candidate starts at "@", so its pad must hold a whole local part; phone and card candidates
# already hold every digit and only need a "+" or "(" before them, and small windows keep libphonenumber
# from scanning the digit-heavy neighbourhood (tables, code). Windows are joined with a blank line,
# which none of the recognizers match across.
_WINDOW_PAD = {"EMAIL_ADDRESS": (64, 200), "PHONE_NUMBER": (4, 24), "IP_ADDRESS": (40, 64), "CREDIT_CARD": (2, 24)}
_JOIN = "\n\n"

# Score given to phone matches written with a "+", brackets or separators: libphonenumber already
# validated them for a region, but presidio's base score (0.4) is meant to be lifted by context words,
# which the no-op NLP engine cannot provide. Bare digit runs keep 0.4 unless a phone word precedes them.
_PHONE_FORMATTED_SCORE = 0.6
_CONTEXT_BOOST = 0.35  # presidio's default context similarity factor
_PHONE_CONTEXT = re.compile(r"(?i)\b(?:phone|tel|telephone|mobile|cell|fax|call|whatsapp|sms)\b")

# A dotted quad preceded or followed by these words is a version / section number, not an address.
_VERSION_BEFORE = re.compile(
    r"(?i)(?:\bv|\bversions?|\bver\.?|\breleases?d?|\brev(?:ision)?|\bbuild|\bpatch|\btag(?:ged)?"
    r"|\bupgraded?\s+to|\bbump(?:ed|s)?\s+to|\bsections?|\bchapters?|§|\bfig(?:ure)?\.?|\btable)\s*[:=#]?\s*$"
    r"|(?:==|>=|<=|~=|!=|\^|~>)\s*$"  # dependency pins: pkg==1.2.3.4
)
_VERSION_AFTER = re.compile(r"(?i)^\s*(?:release|version|build|changelog|tag)\b")
_ISBN_BEFORE = re.compile(r"(?i)\bisbn(?:-1[03])?\b[^\n]{0,32}$")
_DIGIT_BEFORE = re.compile(r"\d[ \-.]$")
_DIGIT_AFTER = re.compile(r"[ \-.:]\d")
_MONTH_BEFORE = re.compile(r"(?i)\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?\s*$")
_DECIMAL = re.compile(r"^\d+[.,]\d+$")
_DATE_PREFIX = re.compile(r"(?:\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{4}|\d{4}[-/]\d{4})(?!\d)")
_DATE = re.compile(
    r"^(?:\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4})(?:[ T]\d{1,2}(?::\d{2}){1,2})?$"
)


class PiiConfig(BaseModel):
    """Which PII to replace, with what, and where."""

    model_config = ConfigDict(extra="forbid")

    entities: list[str] = Field(default_factory=lambda: list(SUPPORTED_ENTITIES))
    # entity -> replacement token; entities missing here fall back to "<ENTITY_TYPE>"
    placeholders: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_PLACEHOLDERS))
    # regions libphonenumber tries for numbers written without "+country code"
    phone_regions: list[str] = Field(default_factory=lambda: ["US", "GB", "DE", "FR", "IN"])
    # final (re-scored) result score needed to replace a span; e-mails and Luhn-valid cards score 1.0,
    # IPs 0.6, formatted phones 0.6, bare digit runs 0.4 (0.75 after a phone word)
    score_threshold: float = 0.5
    apply_to_sources: list[str] = Field(default_factory=lambda: ["web", "book", "code", "other"])

    @model_validator(mode="after")
    def _check(self) -> PiiConfig:
        unknown = [e for e in self.entities if e not in SUPPORTED_ENTITIES]
        if unknown:
            raise ValueError(f"unsupported PII entities {unknown}; supported: {list(SUPPORTED_ENTITIES)}")
        bad_sources = [s for s in self.apply_to_sources if s not in SOURCES]
        if bad_sources:
            raise ValueError(f"unknown sources {bad_sources}; expected a subset of {list(SOURCES)}")
        return self

    def placeholder(self, entity: str) -> str:
        return self.placeholders.get(entity, f"<{entity}>")


@lru_cache(maxsize=8)
def _build_analyzer(entities: tuple[str, ...], phone_regions: tuple[str, ...]) -> AnalyzerEngine:
    # Quiet presidio's per-call warnings (e.g. about the no-op NLP engine); errors still surface.
    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    nlp = NlpEngineProvider(
        nlp_configuration={"nlp_engine_name": "no_op", "models": [{"lang_code": "en", "model_name": "no_op"}]}
    ).create_engine()
    makers = {
        "EMAIL_ADDRESS": EmailRecognizer,
        "PHONE_NUMBER": lambda: PhoneRecognizer(supported_regions=phone_regions),
        "IP_ADDRESS": IpRecognizer,
        "CREDIT_CARD": CreditCardRecognizer,
    }
    registry = RecognizerRegistry(recognizers=[makers[e]() for e in entities], supported_languages=["en"])
    return AnalyzerEngine(nlp_engine=nlp, registry=registry, supported_languages=["en"])


def get_analyzer(cfg: PiiConfig) -> AnalyzerEngine:
    """The process-wide presidio analyzer for ``cfg`` (built once; only the configured recognizers)."""
    return _build_analyzer(tuple(cfg.entities), tuple(cfg.phone_regions))


# --------------------------------------------------------------------------------------------- guards


def _is_word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _embedded(text: str, start: int, end: int) -> bool:
    """True when the span is a fragment of a longer token (UUID, hex digest, "v1.2.3.4", "1.2.3.4.5")."""
    if start > 0:
        prev = text[start - 1]
        if _is_word(prev) or (prev in "-." and start > 1 and _is_word(text[start - 2])):
            return True
    if end < len(text):
        nxt = text[end]
        if _is_word(nxt) or (nxt in "-." and end + 1 < len(text) and _is_word(text[end + 1])):
            return True
    return False


def _isbn_checksum(digits: str) -> bool:
    if len(digits) == 10:
        vals = [10 if c in "Xx" else int(c) for c in digits]
        return sum((10 - i) * v for i, v in enumerate(vals)) % 11 == 0
    if len(digits) == 13 and digits[:3] in ("978", "979") and digits.isdigit():
        return sum((1 if i % 2 == 0 else 3) * int(c) for i, c in enumerate(digits)) % 10 == 0
    return False


def _looks_like_isbn(span: str) -> bool:
    # Hyphenated ISBN-10/13 (e.g. 0-306-40615-2, 978-3-16-148410-0) whose check digit is right.
    groups = span.split("-")
    return len(groups) in (4, 5) and all(g.isalnum() for g in groups) and _isbn_checksum("".join(groups))


def _score(entity: str, text: str, start: int, end: int, score: float, source: str) -> float:
    """Presidio's score adjusted by our guards; 0 means "not PII"."""
    span = text[start:end]
    if entity == "EMAIL_ADDRESS":
        # "date-fns@3.6.0": a package pin, not an address (a real top-level domain has a letter)
        tld = span.rsplit(".", 1)[-1]
        return score if any(c.isalpha() for c in tld) else 0.0
    if _embedded(text, start, end):
        return 0.0
    if entity == "IP_ADDRESS":
        if ":" in span and "." not in span:
            groups = [g for g in span.split("/")[0].split(":") if g]
            if len(groups) < 2 or not any(c.isdigit() for c in span):
                return 0.0  # "::1", "${x::23}", "dead::beef": loopback, slices, identifiers
        if "." in span and ":" not in span:
            if span.startswith("0."):
                return 0.0  # 0.0.0.0/8 is "this network", never a host's address; 0.x.y.z is a version
            if _VERSION_BEFORE.search(text[max(0, start - 24) : start]) or _VERSION_AFTER.match(text[end : end + 16]):
                return 0.0
        return score
    run_on = _DIGIT_BEFORE.search(text, max(0, start - 2), start) or _DIGIT_AFTER.match(text, end)
    if entity in ("PHONE_NUMBER", "CREDIT_CARD") and run_on:
        return 0.0  # one item of a longer run of numbers ("1896 1897 1898 1899 1900")
    if entity == "PHONE_NUMBER":
        if _MONTH_BEFORE.search(text[max(0, start - 12) : start]):
            return 0.0  # "Sep 07 2024 06:05"
        if _DATE.match(span) or _DECIMAL.match(span) or _looks_like_isbn(span):
            return 0.0
        if _ISBN_BEFORE.search(text[max(0, start - 48) : start]):
            return 0.0
        if any(c in span for c in "+()-. /"):
            return max(score, _PHONE_FORMATTED_SCORE)
        # A bare digit run: integer constants in code never count; in prose only after a phone word.
        if source != "code" and _PHONE_CONTEXT.search(text[max(0, start - 32) : start]):
            return min(1.0, score + _CONTEXT_BOOST)
        return score
    return score  # CREDIT_CARD: presidio already demands a Luhn-valid number (score 1.0)


# ------------------------------------------------------------------------------------------- per doc


def _worth_a_look(entity: str, text: str, m: re.Match[str], source: str, threshold: float) -> bool:
    """Skip phone candidates that cannot reach the threshold: the phone search is the costly one and
    code, tables and data are full of digit runs. A bare run scores 0.4 unless a phone word precedes
    it (never in code); a single-separator decimal ("0.5104606781") is a number, not a phone."""
    if entity != "PHONE_NUMBER":
        return True
    span = m.group()
    if _DECIMAL.match(span) or _embedded(text, m.start(), m.end()):
        return False
    date = _DATE_PREFIX.match(span)  # timestamps and year ranges fill code, logs and changelogs
    if date and sum(c.isdigit() for c in span[date.end() :]) < 7:
        return False
    # "0 0 1 0 0 1 0", "1 2 3 4 5 6 7": data, not a phone (at most "+32 (0)2 ...": two 1-digit groups)
    if sum(len(g) == 1 for g in re.findall(r"\d+", span)) > 2:
        return False
    if span.isdigit() and threshold > PhoneRecognizer.SCORE:
        before = text[max(0, m.start() - 32) : m.start()]
        if not before.endswith("+") and (source == "code" or not _PHONE_CONTEXT.search(before)):
            return False
    return True


def _windows(text: str, entity: str, source: str, threshold: float) -> list[tuple[int, int]]:
    """Merged [start, end) windows around the candidate matches of ``entity`` in ``text``."""
    spans: list[tuple[int, int]] = []
    n = len(text)
    pad, snap = _WINDOW_PAD[entity]
    matches = (m for rx in _WINDOW_RES[entity] for m in rx.finditer(text))
    for m in matches:
        if not _worth_a_look(entity, text, m, source, threshold):
            continue
        s = max(0, m.start() - pad)
        e = min(n, m.end() + pad)
        lo = max(0, s - snap)
        while s > lo and not text[s - 1].isspace():
            s -= 1
        hi = min(n, e + snap)
        while e < hi and not text[e].isspace():
            e += 1
        spans.append((s, e))
    spans.sort()
    merged: list[tuple[int, int]] = []
    for s, e in spans:
        if merged and s <= merged[-1][1]:
            if e > merged[-1][1]:
                merged[-1] = (merged[-1][0], e)
        else:
            merged.append((s, e))
    return merged


def _find(
    analyzer: AnalyzerEngine, text: str, entities: list[str], source: str, threshold: float
) -> list[RecognizerResult]:
    """Presidio results (document offsets) for the candidate windows of ``text``, one call per entity
    type, so the costly phone recognizer only reads the phone windows."""
    out = []
    for entity in entities:
        windows = _windows(text, entity, source, threshold)
        if windows:
            out.extend(_find_in_windows(analyzer, text, windows, entity))
    return out


def _find_in_windows(
    analyzer: AnalyzerEngine, text: str, windows: list[tuple[int, int]], entity: str
) -> list[RecognizerResult]:
    pieces = [text[s:e] for s, e in windows]
    offsets: list[int] = []  # start of each window inside the joined text
    pos = 0
    for p in pieces:
        offsets.append(pos)
        pos += len(p) + len(_JOIN)
    joined = _JOIN.join(pieces)
    out = []
    for r in analyzer.analyze(joined, language="en", entities=[entity], score_threshold=0.0):
        i = bisect.bisect_right(offsets, r.start) - 1
        if r.end > offsets[i] + len(pieces[i]):
            continue  # crosses a window boundary (cannot happen with _JOIN, kept as a guard)
        shift = windows[i][0] - offsets[i]
        out.append(RecognizerResult(r.entity_type, r.start + shift, r.end + shift, r.score))
    return out


def _resolve(results: list[RecognizerResult]) -> list[RecognizerResult]:
    """Non-overlapping subset: higher score first, then the longer span, then the earlier one."""
    chosen: list[RecognizerResult] = []
    for r in sorted(results, key=lambda r: (-r.score, -(r.end - r.start), r.start, r.entity_type)):
        if all(r.end <= c.start or r.start >= c.end for c in chosen):
            chosen.append(r)
    return sorted(chosen, key=lambda r: r.start)


def redact_text(
    text: str, entities: list[str], cfg: PiiConfig, source: str = "web", analyzer: AnalyzerEngine | None = None
) -> tuple[str, dict[str, int]]:
    """Replace PII of ``entities`` in one text; returns the new text and the counts per entity type."""
    analyzer = analyzer or get_analyzer(cfg)
    kept = []
    for r in _find(analyzer, text, entities, source, cfg.score_threshold):
        score = _score(r.entity_type, text, r.start, r.end, r.score, source)
        if score >= cfg.score_threshold and score > 0:
            kept.append(RecognizerResult(r.entity_type, r.start, r.end, score))
    counts: dict[str, int] = {}
    for r in reversed(_resolve(kept)):  # right to left, so earlier offsets stay valid
        text = text[: r.start] + cfg.placeholder(r.entity_type) + text[r.end :]
        counts[r.entity_type] = counts.get(r.entity_type, 0) + 1
    return text, counts


# ---------------------------------------------------------------------------------------------- stage


def remove_pii(df: pl.DataFrame, cfg: PiiConfig) -> StageResult:
    """Replace PII in ``text`` with placeholders; add ``pii_count`` (int) and ``pii_types`` (JSON counts).

    Every row is kept. Stats: ``counts`` per entity type, ``docs_with_pii``, ``by_source`` counts,
    plus ``docs_scanned`` (documents handed to presidio).
    """
    n = df.height
    entities = list(cfg.entities)
    applies = pl.col("source").is_in(cfg.apply_to_sources)
    # One vectorised contains() per entity type: which documents may hold which PII.
    cand = (
        df.select("text", "source")
        .with_row_index("_i")
        .with_columns(
            [(applies & pl.col("text").str.contains(CANDIDATE_PATTERNS[e])).fill_null(False).alias(e) for e in entities]
        )
        .filter(pl.any_horizontal(entities))
        if entities and n
        else pl.DataFrame()
    )

    analyzer = get_analyzer(cfg) if cand.height else None
    totals = {e: 0 for e in entities}
    by_source: dict[str, dict[str, int]] = {}
    idx: list[int] = []
    new_texts: list[str] = []
    new_counts: list[int] = []
    new_types: list[str] = []
    for row in cand.iter_rows(named=True):
        doc_entities = [e for e in entities if row[e]]
        text, counts = redact_text(row["text"], doc_entities, cfg, row["source"], analyzer)
        if not counts:
            continue
        idx.append(row["_i"])
        new_texts.append(text)
        new_counts.append(sum(counts.values()))
        new_types.append(json.dumps(counts, sort_keys=True))
        src = by_source.setdefault(row["source"], {})
        for e, c in counts.items():
            totals[e] += c
            src[e] = src.get(e, 0) + c

    text_col = df["text"]
    count_col = pl.Series("pii_count", [0] * n, dtype=pl.Int64)
    types_col = pl.Series("pii_types", ["{}"] * n, dtype=pl.String)
    if idx:
        text_col = text_col.scatter(idx, new_texts)
        count_col = count_col.scatter(idx, new_counts)
        types_col = types_col.scatter(idx, new_types)
    kept = df.with_columns(text_col.alias("text"), count_col, types_col)

    stats: dict[str, Any] = {
        "counts": totals,
        "docs_with_pii": len(idx),
        "by_source": {s: dict(sorted(c.items())) for s, c in sorted(by_source.items())},
        "docs_scanned": cand.height,
    }
    return StageResult(kept=kept, rejected=empty_rejected(), stats=stats)
