"""Finding PII in candidate documents: presidio analyzers, the candidate and window-search patterns, and
``scan``, which hands padded windows around candidate spans of many documents to presidio in a few batched
calls and maps the scored, resolved results back to document offsets."""

from __future__ import annotations

import bisect
import logging
import re
from collections.abc import Callable
from functools import lru_cache

import polars as pl
from presidio_analyzer import AnalyzerEngine, RecognizerRegistry, RecognizerResult
from presidio_analyzer.context_aware_enhancers import ContextAwareEnhancer
from presidio_analyzer.nlp_engine import NlpEngineProvider
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    EmailRecognizer,
    IbanRecognizer,
    IpRecognizer,
    PhoneRecognizer,
    UsSsnRecognizer,
)

from pipeline.pii.config import PiiConfig
from pipeline.pii.recognizers import SecretRecognizer
from pipeline.pii.scoring import guarded_score, resolve_overlaps, worth_a_look
from pipeline.pii.secret_patterns import SECRET_PATTERNS

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
CANDIDATE_PARTS = {**{e: (p,) for e, p in CANDIDATE_PATTERNS.items()}, "IP_ADDRESS": _IP_CANDIDATES}
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
    it would only deep-copy every result. Context words are applied by ``guarded_score`` instead."""

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


def _rust_matches(texts: list[str], patterns: list[str]) -> dict[str, list[list[str]]]:
    """Per pattern, the strings it matches in each of ``texts``: one polars pass (Rust's regex crate, several
    times faster than ``re`` on the digit-started patterns, which ``re`` tries at every digit)."""
    if not patterns or not texts:
        return {}
    frame = pl.DataFrame({"t": texts}, schema={"t": pl.String}).with_row_index("_i")
    parts = [
        part.select("_i", *[pl.col("t").str.extract_all(ascii(p)).alias(str(k)) for k, p in enumerate(patterns)])
        for part, ascii in digit_parts(frame, "t")
    ]
    found = pl.concat(parts).sort("_i") if len(parts) > 1 else parts[0]
    return {p: found[str(k)].to_list() for k, p in enumerate(patterns)}


def digit_parts(frame: pl.DataFrame, col: str) -> list[tuple[pl.DataFrame, Callable[[str], str]]]:
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


def rust_patterns(entities: list[str]) -> list[str]:
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
    in ``resolve_overlaps``: presidio's phone search, the costly one, need not see the window."""
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
        if not worth_a_look(entity, text, m_start, m_end, source, threshold):
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
            score = guarded_score(
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
        rust = _rust_matches(texts, rust_patterns([e for e in cfg.entities if e in wanted]))
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
                    others = resolve_overlaps(scored[i][1])
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
        out.append(resolve_overlaps(done + kept(i, raw[i][n:])))
    return out
