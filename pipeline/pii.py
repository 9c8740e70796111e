"""PII and secrets removal, on presidio-analyzer, offline (its no-op NLP engine: no model is loaded).

Found: e-mail addresses, phone numbers (libphonenumber, several regions), IPv4/IPv6 addresses, credit cards
(Luhn), IBANs (mod 97), US SSNs (presidio's recognizers), and, with Refinery's own presidio recognizers
(``pipeline/pii_recognizers.py``), cloud keys, GitHub/GitLab/Slack tokens, private-key blocks, JWTs,
``password=`` values and the ``user:pass`` of URLs.

Every text-bearing column is redacted, not only ``text``: ``url``, ``path``, ``domain`` and other strings
whole, every value of the ``meta``/``detail`` JSON with its key as context (``redact_columns``; rejected rows:
``redact_rejected``). PII written to escape recognizers ("jane [at] example [dot] com", "%40", a phone number
broken across a line) is read through a rewritten view of its string (``pipeline.pii_recognizers.view_of``).

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
"""

from __future__ import annotations

import bisect
import hashlib
import ipaddress
import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

# tldextract (used by presidio's e-mail recognizer) would otherwise try to download the public suffix
# list; with no URLs it uses the snapshot bundled with the package. Must be set before importing presidio.
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

import polars as pl  # noqa: E402
from presidio_analyzer import AnalyzerEngine, RecognizerRegistry, RecognizerResult  # noqa: E402
from presidio_analyzer.context_aware_enhancers import ContextAwareEnhancer  # noqa: E402
from presidio_analyzer.nlp_engine import NlpEngineProvider  # noqa: E402
from presidio_analyzer.predefined_recognizers import (  # noqa: E402
    CreditCardRecognizer,
    EmailRecognizer,
    IbanRecognizer,
    IpRecognizer,
    PhoneRecognizer,
    UsSsnRecognizer,
)
from pydantic import BaseModel, ConfigDict, Field, model_validator  # noqa: E402

from pipeline.bounds import MAX_DOC_CHARS, Float, Int  # noqa: E402
from pipeline.pii_recognizers import SECRET_PATTERNS, VIEW_TRIGGERS, SecretRecognizer, ViewMap, view_of  # noqa: E402
from pipeline.schema import SOURCES, StageResult, empty_rejected, to_rejected  # noqa: E402

STAGE = "pii"

# Presidio's own recognizers (offline, regex + checksum) first, then Refinery's secret recognizers.
PRESIDIO_ENTITIES = ("EMAIL_ADDRESS", "PHONE_NUMBER", "IP_ADDRESS", "CREDIT_CARD", "IBAN_CODE", "US_SSN")
SECRET_ENTITIES = tuple(SECRET_PATTERNS)
SUPPORTED_ENTITIES = PRESIDIO_ENTITIES + SECRET_ENTITIES

DEFAULT_PLACEHOLDERS = {
    "EMAIL_ADDRESS": "<EMAIL>",
    "PHONE_NUMBER": "<PHONE>",
    "IP_ADDRESS": "<IP>",
    "CREDIT_CARD": "<CREDIT_CARD>",
    "IBAN_CODE": "<IBAN>",
    "US_SSN": "<SSN>",
    "URL_CREDENTIALS": "<CREDENTIALS>",
    "AWS_ACCESS_KEY": "<AWS_KEY>",
    "GITHUB_TOKEN": "<GITHUB_TOKEN>",
    "GITLAB_TOKEN": "<GITLAB_TOKEN>",
    "SLACK_TOKEN": "<SLACK_TOKEN>",
    "PRIVATE_KEY": "<PRIVATE_KEY>",
    "JWT": "<JWT>",
    "PASSWORD": "<PASSWORD>",
}

Policy = Literal["placeholder", "mask", "hash", "drop"]

# Address ranges that ``keep_ip_ranges`` can exempt from replacement.
IP_RANGES: dict[str, tuple[str, ...]] = {
    "private": ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"),
    "loopback": ("127.0.0.0/8", "::1/128"),
    "documentation": ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"),
    "link_local": ("169.254.0.0/16", "fe80::/10"),
}
IpRange = Literal["private", "loopback", "documentation", "link_local"]

# Overlaps are resolved by this rank first (lower wins), then score: a specific, validated shape (a key,
# an IBAN, the credentials of a URL) beats a generic one (an e-mail inside "user:pass@host", a phone-like
# digit run inside an SSN or a card number).
_RANK = {"PHONE_NUMBER": 2, "EMAIL_ADDRESS": 1, "IP_ADDRESS": 1, "PERSON": 3, "LOCATION": 3}

# The IP pre-check's alternatives: dotted quad, "::" next to a hex group holding a digit, >= 3 "hex:" groups
# (written out, not "(?:hex:){3,}": the same texts match, and Rust's regex crate then scans for the inner
# ":"). Polars checks them one by one, each at memchr speed, where their alternation scans ~10x slower.
_IP_CANDIDATES = (
    r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}",
    r"::[0-9A-Fa-f]*\d|\d[0-9A-Fa-f]*::",
    r"[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]",
)
# Pre-check regexes: a superset of what presidio's recognizers can match, written in the syntax shared by
# Rust's regex crate (polars) and Python's ``re`` (window search), so both passes agree.
CANDIDATE_PATTERNS: dict[str, str] = {
    # a local-part character, "@", a domain label and a dot
    "EMAIL_ADDRESS": r"[\w!#$%&'*+/=?^`{|}~\-]@\w[\w\-]*\.\w",
    # >= 7 digits, separated by at most 3 of the characters phone numbers are written with
    "PHONE_NUMBER": r"\d(?:[ \t\u00a0().\-/]{0,3}\d){6,14}",
    "IP_ADDRESS": "|".join(_IP_CANDIDATES),
    # 13-19 digits in presidio's card layout (4 groups, optional space/dash separators)
    "CREDIT_CARD": r"\d{4}[ \-]?\d{3,4}[ \-]?\d{3,4}[ \-]?\d{3,5}",
    # two capitals, two check digits, a 4-character group (presidio then validates the mod-97 checksum)
    "IBAN_CODE": r"[A-Z]{2}\d{2} ?[A-Z0-9]{4}",
    # 3-2-4 digits with one separator kind (presidio's "medium" SSN pattern; bare 9-digit runs score 0.05)
    "US_SSN": r"\d{3}[- .]\d{2}[- .]\d{4}",
    **{e: p.candidate for e, p in SECRET_PATTERNS.items()},
}
# What polars checks per entity type: the candidate, or alternatives whose union it is.
_CANDIDATE_PARTS = {**{e: (p,) for e, p in CANDIDATE_PATTERNS.items()}, "IP_ADDRESS": _IP_CANDIDATES}
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
    "IBAN_CODE": [re.compile(CANDIDATE_PATTERNS["IBAN_CODE"])],
    "US_SSN": [re.compile(CANDIDATE_PATTERNS["US_SSN"])],
    # secrets: the cheap pre-check (a token's prefix, a key word, "://user:pass@"); the window is then
    # widened to whitespace, which tokens do not hold. Private-key blocks and JWTs hold more than a window's
    # pad, so their windows come from the recognizer's own regex.
    **{e: [re.compile(p.candidate)] for e, p in SECRET_PATTERNS.items()},
    "PRIVATE_KEY": [re.compile(SECRET_PATTERNS["PRIVATE_KEY"].regex)],
    "JWT": [re.compile(SECRET_PATTERNS["JWT"].regex)],
}
# Window-search patterns with no look-arounds, which run in polars (see ``_match_spans``); the others
# (JWT, private keys, short literal-led ones where ``re`` is as fast) stay in Python.
_RUST_WINDOW_PATTERNS = {
    CANDIDATE_PATTERNS["PHONE_NUMBER"],
    CANDIDATE_PATTERNS["CREDIT_CARD"],
    CANDIDATE_PATTERNS["IBAN_CODE"],
    CANDIDATE_PATTERNS["US_SSN"],
    SECRET_PATTERNS["PASSWORD"].candidate,
    SECRET_PATTERNS["SLACK_TOKEN"].candidate,
    r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}",
    r"\d[0-9A-Fa-f]{0,3}::",
}

# Rust's regex crate runs these digit-led patterns 5-10x slower with Unicode ``\d`` (the digits of every
# script, which presidio and libphonenumber read too: "＋４４ ２０ ...") than with ``[0-9]``. Documents whose
# digits are all ASCII, nearly all of them, get ``[0-9]`` copies of the patterns, which match the same there.
_NON_ASCII_DIGIT = r"[\d&&[^0-9]]"


def _ascii_digits(pattern: str) -> str:
    r"""``pattern`` with ``\d`` read as ASCII digits (none of our patterns puts ``\d`` inside a class)."""
    return pattern.replace(r"\d", "[0-9]")


# Window around a candidate handed to presidio: (pad, widen-to-whitespace limit) per entity type. The
# e-mail candidate starts at "@", so its pad must hold a whole local part; phone and card candidates
# already hold every digit and only need a "+" or "(" before them, and small windows keep libphonenumber
# from scanning the digit-heavy neighbourhood (tables, code). Windows are joined with a blank line,
# which none of the recognizers match across.
_WINDOW_PAD = {
    "EMAIL_ADDRESS": (64, 200),
    "PHONE_NUMBER": (4, 24),
    "IP_ADDRESS": (40, 64),
    "CREDIT_CARD": (2, 24),
    "IBAN_CODE": (40, 16),  # an IBAN written in groups of four holds spaces: pad past its end
    "US_SSN": (2, 16),
    **{e: (2, 300) for e in SECRET_PATTERNS},
    "PASSWORD": (24, 140),  # the window starts at the key word: take its prefix (DB_) and the whole value
    "URL_CREDENTIALS": (24, 40),  # ... and at "://": take the scheme
}
_JOIN = "\n\n"
_DIGITS = re.compile(r"\d+")
# Windows of many documents are joined into one presidio call of at most this many characters: presidio's
# per-call overhead (NLP artifacts, context enhancement, result sorting) then counts once per batch.
_BATCH_CHARS = 200_000

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
_VERSION_AFTER = re.compile(
    r"(?i)^\s*(?:release|version|build|changelog|tag)\b"
    r"|^\]?\s*[(\-\u2013\u2014/]?\s*\(?\d{4}-\d{2}-\d{2}"  # changelog entry: "4.2.1.0 (2021-03-04)"
)
_HEADING_BEFORE = re.compile(r"(?:^|\n)#{1,6}[ \t]*\[?v?$")  # "## 4.2.1.0": a Markdown release heading
_ISBN_BEFORE = re.compile(r"(?i)\bisbn(?:-1[03])?\b[^\n]{0,32}$")
_DIGIT_BEFORE = re.compile(r"\d[ \-.]$")
_DIGIT_AFTER = re.compile(r"[ \-.:]\d")
_MONTH_BEFORE = re.compile(r"(?i)\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?\s*$")
_FILE_EXTENSIONS = frozenset("png jpg jpeg gif svg webp avif ico bmp tif tiff css js json pdf".split())
_HASH_TOKEN_BEFORE = re.compile(r"<[A-Z][A-Z_]*:[0-9a-f]{0,12}$")
_ZIP4 = re.compile(r"^\d{5}-\d{4}$")
_STATE_BEFORE = re.compile(r"\b[A-Z]{2}\s+$")
_DECIMAL = re.compile(r"^\d+[.,]\d+$")
_DATE_PREFIX = re.compile(r"(?:\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{4}|\d{4}[-/]\d{4})(?!\d)")
_DATE = re.compile(
    r"^(?:\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4})(?:[ T]\d{1,2}(?::\d{2}){1,2})?$"
)


class PiiConfig(BaseModel):
    """Which PII to find, what to do with each type, and where."""

    model_config = ConfigDict(extra="forbid")

    entities: list[str] = Field(default_factory=lambda: list(SUPPORTED_ENTITIES))
    # entity -> replacement token; entities missing here fall back to "<ENTITY_TYPE>"
    placeholders: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_PLACEHOLDERS))
    # what happens to a finding: "placeholder" (typed token, e.g. <EMAIL>), "mask" (letters and digits ->
    # mask_char, separators kept), "hash" (<EMAIL:1f0c9a2b7e4d>: salted, the same value gives the same token
    # in every document), "drop" (placeholder, and the document is rejected when it holds more than
    # drop_above findings of "drop" types)
    policy: Policy = "placeholder"
    policies: dict[str, Policy] = Field(default_factory=dict)  # per entity type, overrides ``policy``
    hash_salt: str = "refinery"  # set a private salt per corpus; without it hashes can be brute-forced
    mask_char: str = Field(default="*", min_length=1, max_length=1)
    drop_above: Int = Field(default=0, ge=0, le=MAX_DOC_CHARS)
    # regions libphonenumber tries for numbers written without "+country code"
    phone_regions: list[str] = Field(default_factory=lambda: ["US", "GB", "DE", "FR", "IN"])
    # IP ranges left as they are in prose (web, book, other) and in code: in source code, private, loopback,
    # documentation and link-local addresses are test fixtures, defaults and examples, not anyone's address
    keep_ip_ranges: list[IpRange] = Field(default_factory=list)
    keep_ip_ranges_in_code: list[IpRange] = Field(
        default_factory=lambda: ["private", "loopback", "documentation", "link_local"]
    )
    # final (re-scored) result score needed to replace a span; e-mails, Luhn-valid cards, IBANs and secrets
    # score 1.0, IPs 0.6, formatted phones 0.6, SSNs 0.5, bare digit runs 0.4 (0.75 after a phone word)
    score_threshold: Float = Field(0.5, gt=0.0, le=1.0)
    # Optional names and places: a spaCy model package (e.g. "en_core_web_sm") that must be installed
    # separately; off by default. Every applicable document then goes through the model (no pre-check),
    # about a thousand times slower than the rest of the stage; see docs/PII.md.
    ner_model: str | None = None
    ner_entities: list[Literal["PERSON", "LOCATION"]] = Field(default_factory=lambda: ["PERSON", "LOCATION"])
    apply_to_sources: list[str] = Field(default_factory=lambda: ["web", "book", "code", "other"])

    @model_validator(mode="after")
    def _check(self) -> PiiConfig:
        unknown = [e for e in [*self.entities, *self.policies] if e not in SUPPORTED_ENTITIES]
        if unknown:
            raise ValueError(f"unsupported PII entities {unknown}; supported: {list(SUPPORTED_ENTITIES)}")
        bad_sources = [s for s in self.apply_to_sources if s not in SOURCES]
        if bad_sources:
            raise ValueError(f"unknown sources {bad_sources}; expected a subset of {list(SOURCES)}")
        return self

    def placeholder(self, entity: str) -> str:
        return self.placeholders.get(entity, f"<{entity}>")

    def policy_for(self, entity: str) -> Policy:
        return self.policies.get(entity, self.policy)

    def replacement(self, entity: str, value: str) -> str:
        """The text that replaces ``value`` (a finding of ``entity``) under this config's policy."""
        policy = self.policy_for(entity)
        if policy == "mask":
            return "".join(self.mask_char if c.isalnum() else c for c in value)
        token = self.placeholder(entity)
        if policy == "hash":
            digest = hashlib.blake2b(value.encode(), key=self.hash_salt.encode()[:64], digest_size=6).hexdigest()
            return f"{token[:-1]}:{digest}>" if token.startswith("<") and token.endswith(">") else f"{token}:{digest}"
        return token


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
        "IBAN_CODE": IbanRecognizer,
        "US_SSN": UsSsnRecognizer,
        **{e: (lambda p=p: SecretRecognizer(p)) for e, p in SECRET_PATTERNS.items()},
    }
    registry = RecognizerRegistry(recognizers=[makers[e]() for e in entities], supported_languages=["en"])
    return AnalyzerEngine(
        nlp_engine=nlp, registry=registry, supported_languages=["en"], context_aware_enhancer=_NoContext()
    )


class _NoContext(ContextAwareEnhancer):
    """Presidio's default enhancer boosts scores by context lemmas, which the no-op NLP engine never produces;
    it would only deep-copy every result. Context words are applied by ``_score`` instead."""

    def __init__(self) -> None:
        super().__init__(0.0, 0.0, 0, 0)

    def enhance_using_context(self, text, raw_results, nlp_artifacts, recognizers, context=None):  # type: ignore[no-untyped-def]  # noqa: ANN001
        return raw_results


# spaCy labels that presidio would map to entities we do not replace (organisations, dates, numbers).
_NER_IGNORE = ["ORG", "DATE", "TIME", "CARDINAL", "ORDINAL", "MONEY", "PERCENT", "QUANTITY", "NORP", "WORK_OF_ART",
               "LAW", "LANGUAGE", "EVENT", "PRODUCT", "FAC"]  # fmt: skip


@lru_cache(maxsize=2)
def _build_ner_analyzer(model: str) -> AnalyzerEngine:
    import importlib.util

    # Fail here rather than let presidio download the model at run time (nothing is fetched during a run).
    if importlib.util.find_spec("spacy") is None or importlib.util.find_spec(model) is None:
        raise RuntimeError(f"pii.ner_model={model!r} needs spaCy and the model package {model!r} installed")
    nlp = NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": "en", "model_name": model}],
            "ner_model_configuration": {"labels_to_ignore": _NER_IGNORE},
        }
    ).create_engine()
    return AnalyzerEngine(nlp_engine=nlp, supported_languages=["en"])


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


@lru_cache(maxsize=32)
def _networks(ranges: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(n) for r in ranges for n in IP_RANGES[r])


def _kept_ip(span: str, keep: tuple[str, ...]) -> bool:
    """True when the address lies in one of the ``keep_ip_ranges``."""
    try:
        addr = ipaddress.ip_address(span.split("/")[0].split("%")[0])
    except ValueError:
        return False
    return any(addr.version == n.version and addr in n for n in _networks(keep))


def _netmask(span: str) -> bool:
    try:
        bits = int(ipaddress.IPv4Address(span.split("/")[0]))
    except ValueError:
        return False
    inverted = ~bits & 0xFFFFFFFF
    return span.startswith("255.") and inverted & (inverted + 1) == 0  # ones, then only zeros


def _network_address(span: str) -> bool:
    try:
        net = ipaddress.ip_network(span, strict=False)
    except ValueError:
        return False
    return net.prefixlen < net.max_prefixlen and net.network_address == ipaddress.ip_address(span.split("/")[0])


def _is_range(span: str) -> bool:
    parts = span.split("-")
    return (
        len(parts) == 2
        and all(p.isdigit() for p in parts)
        and len(parts[0]) == len(parts[1])
        and parts[0][:2] == parts[1][:2]
        and int(parts[0]) < int(parts[1])
    )


def _score(
    entity: str, text: str, start: int, end: int, score: float, source: str, keep_ips: tuple[str, ...] = ()
) -> float:
    """Presidio's score adjusted by our guards; 0 means "not PII"."""
    span = text[start:end]
    if _HASH_TOKEN_BEFORE.search(text, max(0, start - 40), start):
        return 0.0  # the digest of an earlier "hash" replacement (<PHONE:415055501342>): already redacted
    if entity in SECRET_PATTERNS or entity in ("PERSON", "LOCATION"):
        return score  # specific shapes validated by their recognizer; the NER model's own judgement
    if entity == "EMAIL_ADDRESS":
        # "date-fns@3.6.0": a package pin, not an address (a real top-level domain has a letter)
        # "icon@2x.png": a high-resolution image's file name, not an address
        tld = span.rsplit(".", 1)[-1]
        return score if any(c.isalpha() for c in tld) and tld.lower() not in _FILE_EXTENSIONS else 0.0
    if _embedded(text, start, end):
        return 0.0
    if entity == "IP_ADDRESS":
        if keep_ips and _kept_ip(span, keep_ips):
            return 0.0
        if "." in span and ":" not in span and _netmask(span):
            return 0.0  # "255.255.255.248": a netmask
        if "/" in span and _network_address(span):
            return 0.0  # "1.208.0.0/12": a network (host bits zero), not a host's address
        if ":" in span and "." not in span:
            groups = [g for g in span.split("/")[0].split(":") if g]
            if len(groups) < 2 or not any(c.isdigit() for c in span):
                return 0.0  # "::1", "${x::23}", "dead::beef": loopback, slices, identifiers
        if "." in span and ":" not in span:
            if span.startswith("0."):
                return 0.0  # 0.0.0.0/8 is "this network", never a host's address; 0.x.y.z is a version
            before = text[max(0, start - 24) : start]
            if (
                _VERSION_BEFORE.search(before)
                or _HEADING_BEFORE.search(before)
                or _VERSION_AFTER.match(text[end : end + 16])
            ):
                return 0.0
        return score
    run_on = _DIGIT_BEFORE.search(text, max(0, start - 2), start) or _DIGIT_AFTER.match(text, end)
    if entity in ("PHONE_NUMBER", "CREDIT_CARD", "US_SSN") and run_on:
        return 0.0  # one item of a longer run of numbers ("1896 1897 1898 1899 1900")
    if entity == "PHONE_NUMBER":
        if _MONTH_BEFORE.search(text[max(0, start - 12) : start]):
            return 0.0  # "Sep 07 2024 06:05"
        if _DATE.match(span) or _DECIMAL.match(span) or _looks_like_isbn(span):
            return 0.0
        if _ISBN_BEFORE.search(text[max(0, start - 48) : start]):
            return 0.0
        if _ZIP4.match(span) and _STATE_BEFORE.search(text[max(0, start - 6) : start]):
            return 0.0  # "Boston, MA  02111-1307": a ZIP+4 code
        if _is_range(span):
            return 0.0  # "79155-79172": pages of a citation
        if any(c in span for c in "+()-. /"):
            return max(score, _PHONE_FORMATTED_SCORE)
        # A bare digit run: integer constants in code never count; in prose only after a phone word.
        if source != "code" and _PHONE_CONTEXT.search(text[max(0, start - 32) : start]):
            return min(1.0, score + _CONTEXT_BOOST)
        return score
    return score  # CREDIT_CARD (Luhn), IBAN_CODE (mod 97), US_SSN (presidio's invalid-number rules)


# ------------------------------------------------------------------------------------------- per doc


def _worth_a_look(entity: str, text: str, start: int, end: int, source: str, threshold: float) -> bool:
    """Skip phone candidates that cannot reach the threshold: the phone search is the costly one and
    code, tables and data are full of digit runs. A bare run scores 0.4 unless a phone word precedes
    it (never in code); a single-separator decimal ("0.5104606781") is a number, not a phone."""
    if entity != "PHONE_NUMBER":
        return True
    span = text[start:end]
    if _DECIMAL.match(span) or _embedded(text, start, end):
        return False
    date = _DATE_PREFIX.match(span)  # timestamps and year ranges fill code, logs and changelogs
    if date and sum(c.isdigit() for c in span[date.end() :]) < 7:
        return False
    # "0 0 1 0 0 1 0", "1 2 3 4 5 6 7": data, not a phone (at most "+32 (0)2 ...": two 1-digit groups)
    groups = re.findall(r"\d+", span)
    if sum(len(g) == 1 for g in groups) > 2:
        return False
    if len(groups) >= 4 and len(set(groups)) < 3:  # "16 16 8 16 16 8": a rhythm, a table row
        return False
    if span.isdigit() and threshold > PhoneRecognizer.SCORE:
        before = text[max(0, start - 32) : start]
        if not before.endswith("+") and (source == "code" or not _PHONE_CONTEXT.search(before)):
            return False
    return True


def _rust_matches(texts: list[str], patterns: list[str]) -> dict[str, list[list[str]]]:
    """Per pattern, the strings it matches in each of ``texts``: one polars pass (Rust's regex crate, several
    times faster than ``re`` on the digit-started patterns, which ``re`` tries at every digit)."""
    if not patterns or not texts:
        return {}
    frame = pl.DataFrame({"t": texts}, schema={"t": pl.String}).with_row_index("_i")
    parts = [
        part.select("_i", *[pl.col("t").str.extract_all(ascii(p)).alias(str(k)) for k, p in enumerate(patterns)])
        for part, ascii in _digit_parts(frame, "t")
    ]
    found = pl.concat(parts).sort("_i") if len(parts) > 1 else parts[0]
    return {p: found[str(k)].to_list() for k, p in enumerate(patterns)}


def _digit_parts(frame: pl.DataFrame, col: str) -> list[tuple[pl.DataFrame, Callable[[str], str]]]:
    """``frame`` split into the rows whose digits in ``col`` are all ASCII and the others (rare), each with the
    pattern rewrite its regexes need (``_ascii_digits`` or none). Callers re-sort by a row index."""
    texts = frame[col]
    other = (texts.str.len_bytes() != texts.str.len_chars()).fill_null(False)  # non-ASCII text only
    if other.any():
        other = other.scatter(other.arg_true(), texts.filter(other).str.contains(_NON_ASCII_DIGIT))
    if not other.any():
        return [(frame, _ascii_digits)]
    return [(frame.filter(~other), _ascii_digits), (frame.filter(other), _unchanged)]


def _unchanged(pattern: str) -> str:
    return pattern


def _rust_patterns(entities: list[str]) -> list[str]:
    """The window-search patterns of ``entities`` that run in polars."""
    patterns = [rx.pattern for e in entities for rx in _WINDOW_RES[e]]
    return [p for p in dict.fromkeys(patterns) if p in _RUST_WINDOW_PATTERNS]


def _match_spans(
    texts: list[str], entity: str, rust: dict[str, list[list[str]]] | None = None
) -> list[list[tuple[int, int]]]:
    """[start, end) of the window-search matches of ``entity`` in each of ``texts``.

    ``rust`` holds, per pattern of ``_RUST_WINDOW_PATTERNS``, the strings it matches in each text (from
    ``_rust_matches``); each is located with ``str.find`` from the end of the previous match, which is exact
    for patterns with no look-arounds: an earlier occurrence of the same string would itself have been the
    leftmost match. The other patterns run in Python's ``re``.
    """
    out: list[list[tuple[int, int]]] = [[] for _ in texts]
    for rx in _WINDOW_RES[entity]:
        if rust is not None and rx.pattern in rust:
            for spans, text, found in zip(out, texts, rust[rx.pattern], strict=True):
                pos = 0
                for value in found or ():
                    start = text.find(value, pos)
                    if start < 0:  # cannot happen (see above); fall back to Python's regex for this text
                        spans.extend((m.start(), m.end()) for m in rx.finditer(text))
                        break
                    pos = start + len(value)
                    spans.append((start, pos))
        else:
            for spans, text in zip(out, texts, strict=True):
                spans.extend((m.start(), m.end()) for m in rx.finditer(text))
    return out


def _window(text: str, start: int, end: int, pad: int, snap: int) -> tuple[int, int]:
    """[start, end) padded by ``pad`` and widened to whitespace by at most ``snap`` more characters."""
    n = len(text)
    s = max(0, start - pad)
    e = min(n, end + pad)
    lo = max(0, s - snap)
    while s > lo and not text[s - 1].isspace():
        s -= 1
    hi = min(n, e + snap)
    while e < hi and not text[e].isspace():
        e += 1
    return s, e


# Characters that end the run an e-mail address can sit in. Before the "@": whitespace, ASCII controls, the
# ASCII punctuation that presidio's e-mail pattern never matches, and the URL delimiters its local part does
# take ("x.com/?email=jane@example.com" would go whole, host and path included, or, led by "/", fail
# presidio's domain check and go unreplaced: the address is what follows the last of them). After the "@":
# anything but the word characters, "-" and "." that presidio's domain holds.
_NOT_IN_LOCAL = re.compile(r"[\s\x00-\x1f\x7f\"(),:;<>\[\\\]/?=&#]")
_NOT_IN_DOMAIN = re.compile(r"[^\w.\-]")


def _address_run(text: str, start: int, end: int, s: int, e: int) -> tuple[int, int]:
    r"""The window [s, e) of the e-mail candidate [start, end) cut to the run of characters around it that
    an address can hold, plus the character either side (presidio's ``\b`` reads it).

    Presidio's e-mail matches hold only such characters and one "@", and every match holds a candidate
    ("@", a label, a dot, a word character), so each is found inside its own candidate's run and
    nothing outside the runs is lost; the pattern, which tries every position, then reads a few dozen
    characters instead of the whole padded window. Where the window ends inside the run, it stays."""
    i = start
    while i > s and not _NOT_IN_LOCAL.match(text, i - 1):
        i -= 1
    stop = _NOT_IN_DOMAIN.search(text, end, e)
    return max(s, i - 1), stop.end() if stop else e


def _claimed(text: str, start: int, end: int, found: list[RecognizerResult]) -> bool:
    """True when the phone candidate [start, end) lies inside one of ``found`` (a document's resolved
    findings of the other types) and every digit of its window does too. Any phone match in that window
    holds a digit, so it would overlap a finding that outranks it (``_RANK``: phones come last) and lose
    in ``_resolve``: presidio's phone search, the costly one, need not see the window."""
    if not any(r.start <= start and end <= r.end for r in found):
        return False
    s, e = _window(text, start, end, *_WINDOW_PAD["PHONE_NUMBER"])
    for m in _DIGITS.finditer(text, s, e):
        if not any(r.start <= m.start() and m.end() <= r.end for r in found):
            return False
    return True


def _windows(
    text: str, entity: str, source: str, threshold: float, matches: list[tuple[int, int]] | None = None
) -> list[tuple[int, int]]:
    """Merged [start, end) windows around the candidate matches of ``entity`` in ``text`` (``matches``:
    their spans, when already found by ``_match_spans``)."""
    spans: list[tuple[int, int]] = []
    pad, snap = _WINDOW_PAD[entity]
    if matches is None:
        (matches,) = _match_spans([text], entity)
    for m_start, m_end in matches:
        if not _worth_a_look(entity, text, m_start, m_end, source, threshold):
            continue
        window = _window(text, m_start, m_end, pad, snap)
        spans.append(_address_run(text, m_start, m_end, *window) if entity == "EMAIL_ADDRESS" else window)
    spans.sort()
    merged: list[tuple[int, int]] = []
    for s, e in spans:
        if merged and s <= merged[-1][1]:
            if e > merged[-1][1]:
                merged[-1] = (merged[-1][0], e)
        else:
            merged.append((s, e))
    return merged


def _international(window: str) -> bool:
    """True when every phone candidate in ``window`` is written after a "+" (a country code)."""
    starts = [m.start() for m in _WINDOW_RES["PHONE_NUMBER"][0].finditer(window)]
    return bool(starts) and all(i > 0 and window[i - 1] == "+" for i in starts)


def _batches(items: list[tuple[int, int, int]], texts: list[str]) -> list[list[tuple[int, int, int]]]:
    """Consecutive groups of windows (doc, start, end) of at most ``_BATCH_CHARS`` characters each."""
    out: list[list[tuple[int, int, int]]] = []
    size = _BATCH_CHARS + 1
    for item in items:
        n = item[2] - item[1] + len(_JOIN)
        if size + n > _BATCH_CHARS:
            out.append([])
            size = 0
        out[-1].append(item)
        size += n
    return out


def _analyze_windows(
    analyzer: AnalyzerEngine, texts: list[str], items: list[tuple[int, int, int]], entity: str
) -> list[tuple[int, RecognizerResult]]:
    """Presidio results for windows of many documents, joined into one call: (doc, result in doc offsets)."""
    pieces = [texts[d][s:e] for d, s, e in items]
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
        doc, start, _ = items[i]
        shift = start - offsets[i]
        out.append((doc, RecognizerResult(r.entity_type, r.start + shift, r.end + shift, r.score)))
    return out


def _resolve(results: list[RecognizerResult]) -> list[RecognizerResult]:
    """Non-overlapping subset: specific types first (``_RANK``), then higher score, the longer span, the
    earlier one."""
    chosen: list[RecognizerResult] = []
    key = lambda r: (_RANK.get(r.entity_type, 0), -r.score, -(r.end - r.start), r.start, r.entity_type)  # noqa: E731
    for r in sorted(results, key=key):
        if all(r.end <= c.start or r.start >= c.end for c in chosen):
            chosen.append(r)
    return sorted(chosen, key=lambda r: r.start)


def scan(
    texts: list[str],
    sources: list[str],
    doc_entities: list[list[str]],
    cfg: PiiConfig,
    rust: dict[str, list[list[str]]] | None = None,
    ner_docs: list[bool] | None = None,
) -> list[list[RecognizerResult]]:
    """Findings per document (non-overlapping, sorted, guarded, above the threshold).

    ``doc_entities[i]`` names the entity types worth looking for in ``texts[i]`` (from the candidate
    pre-check). Per entity type, the candidate windows of all documents go to presidio in batches. With
    ``cfg.ner_model``, the texts flagged in ``ner_docs`` (all when None) also go through the NER model.
    """
    analyzer = get_analyzer(cfg)
    raw: list[list[RecognizerResult]] = [[] for _ in texts]
    keep = tuple(cfg.keep_ip_ranges)
    keep_code = tuple(cfg.keep_ip_ranges_in_code)

    def kept(i: int, results: list[RecognizerResult]) -> list[RecognizerResult]:
        out = []
        for r in results:
            score = _score(
                r.entity_type,
                texts[i],
                r.start,
                r.end,
                r.score,
                sources[i],
                keep_code if sources[i] == "code" else keep,
            )
            if score >= cfg.score_threshold and score > 0:
                out.append(RecognizerResult(r.entity_type, r.start, r.end, score))
        return out

    if rust is None:  # ``remove_pii`` finds these in its candidate pass
        wanted = {e for ents in doc_entities for e in ents}
        rust = _rust_matches(texts, _rust_patterns([e for e in cfg.entities if e in wanted]))
    # doc -> (how many of its raw findings were scored before the phone search, what kept() made of them)
    scored: dict[int, tuple[int, list[RecognizerResult]]] = {}
    # Phones last: their candidates inside a finding of another type need no phone search (``_claimed``).
    for entity in sorted(cfg.entities, key=lambda e: e == "PHONE_NUMBER"):
        docs = [i for i, ents in enumerate(doc_entities) if entity in ents]
        doc_rust = {rx.pattern: [rust[rx.pattern][i] for i in docs] for rx in _WINDOW_RES[entity] if rx.pattern in rust}
        matches = _match_spans([texts[i] for i in docs], entity, doc_rust)
        if entity == "PHONE_NUMBER":
            for i, found in zip(docs, matches, strict=True):
                if found and raw[i]:
                    scored[i] = (len(raw[i]), kept(i, raw[i]))
                    others = _resolve(scored[i][1])
                    found[:] = [(s, e) for s, e in found if not _claimed(texts[i], s, e, others)]
        items = [
            (i, s, e)
            for i, found in zip(docs, matches, strict=True)
            for s, e in _windows(texts[i], entity, sources[i], cfg.score_threshold, found)
        ]
        groups = [(analyzer, items)]
        if entity == "PHONE_NUMBER" and len(cfg.phone_regions) > 1:
            # A number written with "+country code" parses the same whatever the default region, so its
            # windows go to a phone recognizer that tries one region instead of all of them.
            intl = [_international(texts[i][s:e]) for i, s, e in items]
            if any(intl):
                one_region = _build_analyzer(("PHONE_NUMBER",), tuple(cfg.phone_regions[:1]))
                groups = [
                    (one_region, [it for it, x in zip(items, intl, strict=True) if x]),
                    (analyzer, [it for it, x in zip(items, intl, strict=True) if not x]),
                ]
        for engine, group in groups:
            for batch in _batches(group, texts):
                for doc, r in _analyze_windows(engine, texts, batch, entity):
                    raw[doc].append(r)
    if cfg.ner_model:  # names and places: the model reads whole documents
        ner = _build_ner_analyzer(cfg.ner_model)
        for i, text in enumerate(texts):
            if ner_docs is None or ner_docs[i]:
                raw[i].extend(ner.analyze(text, language="en", entities=list(cfg.ner_entities)))
    # Findings scored before the phone search are not scored again: only those that came after them are.
    out = []
    for i in range(len(texts)):
        n, done = scored.get(i, (0, []))
        out.append(_resolve(done + kept(i, raw[i][n:])))
    return out



def _candidates(text: str, cfg: PiiConfig) -> list[str]:
    return [e for e in cfg.entities if re.search(CANDIDATE_PATTERNS[e], text)]


# ---------------------------------------------------------------------------------------------- views


def _scattered(series: pl.Series, idx: list[int], values: list[Any]) -> pl.Series:
    """A copy of ``series`` with ``values`` at ``idx`` (``scatter`` works in place)."""
    out = series.clone()
    out.scatter(idx, values)
    return out


def _to_original(r: RecognizerResult, view_map: ViewMap | None) -> RecognizerResult:
    """A finding in view offsets, in the original's."""
    if view_map is None:
        return r
    return RecognizerResult(r.entity_type, view_map.original(r.start), view_map.original(r.end), r.score)


# ----------------------------------------------------------------------------------------- candidates


@dataclass
class _Cands:
    """The strings of one group (a column, or metadata values) worth handing to presidio."""

    rows: list[int]  # positions in the group
    texts: list[str]  # their views
    sources: list[str]  # the source the guards score them as
    entities: list[list[str]]  # entity types worth looking for in each
    rust: dict[str, list[list[str]]]  # window-search matches found in polars (see ``_match_spans``)
    ner: bool  # whether the optional NER model reads them too
    rules: list[list[str]] = field(default_factory=list)  # view triggers that matched each (when asked for)

    def take(self, keep: list[int]) -> _Cands:
        """The entries at ``keep`` (indices into the lists), in that order."""
        return _Cands(
            [self.rows[k] for k in keep],
            [self.texts[k] for k in keep],
            [self.sources[k] for k in keep],
            [self.entities[k] for k in keep],
            {p: [m[k] for k in keep] for p, m in self.rust.items()},
            self.ner,
        )


def _candidate_pass(
    views: pl.Series,
    scoring: pl.Series,
    applies: pl.Series,
    cfg: PiiConfig,
    ner: bool = False,
    triggers: bool = False,
) -> _Cands:
    """One vectorised ``contains()`` per entity type over ``views``: which strings may hold which PII. The
    window-search patterns that run in polars are extracted in the same pass (``_match_spans``); where one is
    also the entity's candidate pattern, "matched anything" stands for the contains() check. ``triggers``: the
    view triggers run in the same pass too, and strings matching one are kept with the names in ``rules``."""
    entities = list(cfg.entities)
    with_ner = ner and bool(cfg.ner_model)
    if not (entities or with_ner or triggers) or views.len() == 0:
        return _Cands([], [], [], [], {}, with_ner)
    rust_patterns = _rust_patterns(entities)
    extracted = {p: f"_x{k}" for k, p in enumerate(rust_patterns)}
    trig = {f"_v{k}": p for k, p in enumerate(VIEW_TRIGGERS.values())} if triggers else {}

    def has_candidate(e: str, rewrite: Callable[[str], str]) -> pl.Expr:
        return pl.any_horizontal(
            pl.col(extracted[p]).list.len() > 0 if p in extracted else pl.col("text").str.contains(rewrite(p))
            for p in _CANDIDATE_PARTS[e]
        )

    def candidates(part: pl.DataFrame, rewrite: Callable[[str], str]) -> pl.DataFrame:
        wanted = [pl.any_horizontal(entities)] if entities else []
        wanted += [pl.col("_a")] if with_ner else []
        wanted += [pl.col("_a") & pl.any_horizontal(list(trig))] if trig else []
        return (
            part.with_columns(
                *[pl.col("text").str.extract_all(rewrite(p)).alias(c) for p, c in extracted.items()],
                *[pl.col("text").str.contains(p).fill_null(False).alias(c) for c, p in trig.items()],
            )
            .with_columns([(pl.col("_a") & has_candidate(e, rewrite)).fill_null(False).alias(e) for e in entities])
            .filter(pl.any_horizontal(wanted))
        )

    docs = pl.DataFrame({"text": views, "source": scoring, "_a": applies}).with_row_index("_i")
    parts = [candidates(part, rewrite) for part, rewrite in _digit_parts(docs, "text")]
    cand = pl.concat(parts).sort("_i") if len(parts) > 1 else parts[0]
    if cand.height == 0:
        return _Cands([], [], [], [], {}, with_ner)
    rows = cand.to_dict(as_series=False)
    ents = [[e for e in entities if rows[e][k]] for k in range(cand.height)]
    rust = {p: rows[c] for p, c in extracted.items()}
    names = list(VIEW_TRIGGERS)
    rules = [[n for n, c in zip(names, trig, strict=True) if rows[c][k]] for k in range(cand.height)] if trig else []
    return _Cands(rows["_i"], rows["text"], rows["source"], ents, rust, with_ner, rules)


def _scan_groups(groups: list[_Cands], cfg: PiiConfig) -> list[list[list[RecognizerResult]]]:
    """``scan`` over the candidates of every group at once (one set of presidio calls), split per group."""
    texts = [t for g in groups for t in g.texts]
    if not texts:
        return [[] for _ in groups]
    # every group with candidates holds the same patterns; the others add no strings
    keys = dict.fromkeys(p for g in groups for p in g.rust)
    rust = {p: [m for g in groups for m in g.rust.get(p, [])] for p in keys}
    found = scan(
        texts,
        [s for g in groups for s in g.sources],
        [e for g in groups for e in g.entities],
        cfg,
        rust,
        [g.ner for g in groups for _ in g.texts],
    )
    out = []
    pos = 0
    for g in groups:
        out.append(found[pos : pos + len(g.texts)])
        pos += len(g.texts)
    return out


# A finding in original offsets, with the value its replacement is computed from: the view's plain form
# ("jane@example.com" for "jane [at] example [dot] com"), so a hash is the same however the value was written.
Finding = tuple[RecognizerResult, str]


def _findings_of(
    group: _Cands, results: list[list[RecognizerResult]], maps: dict[int, ViewMap]
) -> dict[int, list[Finding]]:
    """Per position in the group, its findings mapped back from the view to the original."""
    out: dict[int, list[Finding]] = {}
    for row, view, found in zip(group.rows, group.texts, results, strict=True):
        if found:
            view_map = maps.get(row)
            out[row] = [(_to_original(r, view_map), view[r.start : r.end]) for r in found]
    return out


def _group(
    values: pl.Series, scoring: pl.Series, applies: pl.Series, cfg: PiiConfig, ner: bool = False, sieve: bool = False
) -> tuple[_Cands, dict[int, ViewMap]]:
    """The candidates among ``values``, read through their views (``view_of``: obfuscated and encoded forms
    rewritten), and the maps back from the rewritten ones. ``sieve``: first keep the values that match one
    union of every candidate pattern and view trigger (one pass instead of ~30, for the many short strings of
    URL and metadata columns, most of which hold nothing)."""
    keep: list[int] | None = None
    if sieve and values.len():
        hit = (applies & values.str.contains(_any_candidate(tuple(cfg.entities)))).fill_null(False)
        keep = hit.arg_true().to_list()
        values, scoring, applies = values.gather(keep), scoring.gather(keep), applies.gather(keep)
    cands, maps = _with_views(_candidate_pass(values, scoring, applies, cfg, ner, triggers=True), cfg)
    if keep is not None:  # back to positions in the whole group
        cands.rows = [keep[i] for i in cands.rows]
        maps = {keep[i]: m for i, m in maps.items()}
    return cands, maps


def _with_views(cands: _Cands, cfg: PiiConfig) -> tuple[_Cands, dict[int, ViewMap]]:
    """``cands`` with the strings a view trigger matched replaced by their views, whose candidates are found
    again (a second pass over those few); strings left with nothing to look for are dropped."""
    redo = [(k, view) for k, text, rules in zip(range(len(cands.rows)), cands.texts, cands.rules, strict=True)
            if rules and (view := view_of(text, rules)) is not None]  # fmt: skip
    redone = {k for k, _ in redo}
    keep = [k for k in range(len(cands.rows)) if k not in redone and (cands.entities[k] or cands.ner)]
    if not redo:
        return (cands.take(keep) if len(keep) < len(cands.rows) else cands), {}
    src = pl.Series([cands.sources[k] for k, _ in redo], dtype=pl.String)
    views = pl.Series([v[0] for _, v in redo], dtype=pl.String)
    again = _candidate_pass(views, src, pl.Series([True] * len(redo)), cfg, cands.ner)
    maps = {cands.rows[redo[j][0]]: redo[j][1][1] for j in again.rows}
    again.rows = [cands.rows[redo[j][0]] for j in again.rows]
    merged = _Cands(
        [*(cands.rows[k] for k in keep), *again.rows],
        [*(cands.texts[k] for k in keep), *again.texts],
        [*(cands.sources[k] for k in keep), *again.sources],
        [*(cands.entities[k] for k in keep), *again.entities],
        {p: [*(m[k] for k in keep), *again.rust.get(p, [])] for p, m in cands.rust.items()},
        cands.ner,
    )
    order = sorted(range(len(merged.rows)), key=merged.rows.__getitem__)
    return merged.take(order), maps


@lru_cache(maxsize=8)
def _any_candidate(entities: tuple[str, ...]) -> str:
    """One pattern matching wherever a candidate pattern of ``entities`` or a view trigger matches."""
    parts = [*(p for e in entities for p in _CANDIDATE_PARTS[e]), *VIEW_TRIGGERS.values()]
    return "|".join(f"(?:{p})" for p in parts)  # grouped: "(?i)" in one stays in it


def _find(texts: list[str], sources: list[str], cfg: PiiConfig) -> list[list[Finding]]:
    """Findings per text (original offsets), obfuscated and encoded forms included."""
    src = pl.Series("s", sources, dtype=pl.String)
    cands, maps = _group(pl.Series("t", texts, dtype=pl.String), src, src.is_in(cfg.apply_to_sources), cfg, True)
    (results,) = _scan_groups([cands], cfg)
    found = _findings_of(cands, results, maps)
    return [found.get(i, []) for i in range(len(texts))]


def find_pii(texts: list[str], sources: list[str], cfg: PiiConfig) -> list[list[RecognizerResult]]:
    """What the stage replaces in each of ``texts`` (scored as documents of ``sources``), in original offsets:
    the vectorised candidate pass, the obfuscated and encoded forms, presidio on candidate windows."""
    return [[r for r, _ in found] for found in _find(texts, sources, cfg)]


def _replacement(cfg: PiiConfig, entity: str, original: str, plain: str) -> str:
    # "mask" keeps the shape of what was written; the others read the plain form (hashes agree across forms)
    return cfg.replacement(entity, original if cfg.policy_for(entity) == "mask" else plain)


def pii_findings(text: str, cfg: PiiConfig, source: str = "web") -> list[dict[str, Any]]:
    """What the stage would replace in ``text``: one dict per finding, in text order, with ``entity_type``,
    ``start``, ``end``, ``score``, ``value`` (as written) and ``replacement``."""
    (found,) = _find([text], [source], cfg)
    return [
        {
            "entity_type": r.entity_type,
            "start": r.start,
            "end": r.end,
            "score": round(r.score, 3),
            "value": text[r.start : r.end],
            "replacement": _replacement(cfg, r.entity_type, text[r.start : r.end], plain),
        }
        for r, plain in found
    ]


def apply_findings(text: str, findings: list[RecognizerResult] | list[Finding], cfg: PiiConfig) -> str:
    """``text`` with each (non-overlapping, sorted) finding replaced under ``cfg``'s policy."""
    parts = []
    pos = 0
    for f in findings:
        r, plain = f if isinstance(f, tuple) else (f, text[f.start : f.end])
        parts.append(text[pos : r.start])
        parts.append(_replacement(cfg, r.entity_type, text[r.start : r.end], plain))
        pos = r.end
    parts.append(text[pos:])
    return "".join(parts)


def _type_counts(found: list[Finding]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r, _ in found:
        counts[r.entity_type] = counts.get(r.entity_type, 0) + 1
    return counts


def redact_text(text: str, cfg: PiiConfig, source: str = "web") -> tuple[str, dict[str, int]]:
    """Replace PII in one text; returns the new text and the counts per entity type."""
    (found,) = _find([text], [source], cfg)
    return apply_findings(text, found, cfg), _type_counts(found)


# -------------------------------------------------------------------------------------- every column

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
    patterns = [_any_candidate(tuple(cfg.entities)), *_JSON_ESCAPES]
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


def _redact(df: pl.DataFrame, cfg: PiiConfig) -> _Redaction:
    """Every text-bearing column of ``df`` redacted under ``cfg``: plain string columns whole, JSON columns value
    by value. ``text`` is scored as a document of its row's source; the other columns of code rows as prose (a
    URL or a title is not code: bare numbers after "phone=" count, fixture IP ranges are not kept)."""
    n = df.height
    source = df["source"].fill_null("other") if "source" in df.columns else pl.Series(["other"] * n, dtype=pl.String)
    applies = source.is_in(cfg.apply_to_sources).fill_null(False)
    prose = source.replace("code", "web")
    columns = [c for c, t in df.schema.items() if t == pl.String and c not in SKIPPED_COLUMNS]
    plain = [c for c in columns if c not in JSON_COLUMNS and c != "text"]
    groups: list[tuple[_Cands, dict]] = []
    if "text" in columns:
        groups.append(_group(df["text"], source, applies, cfg, ner=True))
    if plain:  # all small columns stacked into one group: position p is row p % n of column p // n
        stacked = pl.concat([df[c].alias("v") for c in plain])
        k = len(plain)
        groups.append(_group(stacked, pl.concat([prose] * k), pl.concat([applies] * k), cfg, sieve=True))
    leaves: list[_Leaf] = []
    docs: dict[tuple[str, int], tuple[list[Any], bool]] = {}
    for c in (c for c in columns if c in JSON_COLUMNS):
        found_leaves, parsed = _json_leaves(df, c, _json_candidates(df, c, applies, cfg))
        leaves += found_leaves
        docs.update({(c, row): doc for row, doc in parsed.items()})
    if leaves:
        rows = [leaf.row for leaf in leaves]
        texts = pl.Series("v", [leaf.text for leaf in leaves], dtype=pl.String)
        groups.append(_group(texts, prose.gather(rows), applies.gather(rows), cfg, sieve=True))
    results = _scan_groups([g for g, _ in groups], cfg)
    found = [_findings_of(g, res, maps) for (g, maps), res in zip(groups, results, strict=True)]

    counts: dict[int, dict[str, int]] = {}
    by_column: dict[str, int] = {}
    updates: dict[str, tuple[list[int], list[Any]]] = {}
    g = 0
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
    and percent-encoded forms count (see ``pipeline.pii_recognizers.view_of``). Rows are never dropped here:
    types whose policy is "drop" get their placeholder. Rows whose source is not in ``apply_to_sources`` are
    left as they are.
    """
    red = _redact(df, cfg)
    per_row = [sum(red.counts[i].values()) if i in red.counts else 0 for i in range(df.height)]
    return red.frame, pl.Series("pii_count", per_row, dtype=pl.Int64)


def redact_rejected(df: pl.DataFrame, cfg: PiiConfig) -> pl.DataFrame:
    """A frame of ``REJECTED_SCHEMA`` rows with personal data redacted in ``text``, ``url``, ``path``,
    ``reason`` and every value of ``detail``, like ``redact_columns``; same rows, ids and columns. A rejected
    row cannot be dropped again, so types whose policy is "drop" are replaced by their placeholder."""
    return redact_columns(df, cfg)[0]


# ---------------------------------------------------------------------------------------------- stage


def remove_pii(df: pl.DataFrame, cfg: PiiConfig) -> StageResult:
    """Replace PII in every text-bearing column (``redact_columns``) under each type's policy; add
    ``pii_count`` (int, findings in all columns) and ``pii_types`` (JSON counts). Documents holding more than
    ``drop_above`` findings of "drop" types are rejected (every column redacted too, so ``rejected/`` leaks
    nothing), with the counts in ``detail``.

    Stats: ``counts`` per entity type, ``by_source`` and ``by_column`` counts, ``docs_with_pii``,
    ``docs_dropped``, and ``docs_scanned`` (documents with a candidate in some column, handed to presidio).
    """
    n = df.height
    red = _redact(df, cfg)
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
