"""Scoring PII findings: presidio's score adjusted by guards against known false positives (version numbers,
dates, ISBNs, UUID/hex fragments, integer constants, netmasks, page ranges, ZIP+4), the phone pre-filter, and
overlap resolution."""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache

from presidio_analyzer import RecognizerResult
from presidio_analyzer.predefined_recognizers import PhoneRecognizer

from pipeline.pii.config import IP_RANGES
from pipeline.pii.secret_patterns import SECRET_PATTERNS

# Overlaps are resolved by this rank first (lower wins), then score: a specific, validated shape (a key,
# an IBAN, the credentials of a URL) beats a generic one (an e-mail inside "user:pass@host", a phone-like
# digit run inside an SSN or a card number).
_RANK = {"PHONE_NUMBER": 2, "EMAIL_ADDRESS": 1, "IP_ADDRESS": 1, "PERSON": 3, "LOCATION": 3}

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


def guarded_score(
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


def worth_a_look(entity: str, text: str, start: int, end: int, source: str, threshold: float) -> bool:
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


def resolve_overlaps(results: list[RecognizerResult]) -> list[RecognizerResult]:
    """Non-overlapping subset: specific types first (``_RANK``), then higher score, the longer span, the
    earlier one."""
    chosen: list[RecognizerResult] = []
    key = lambda r: (_RANK.get(r.entity_type, 0), -r.score, -(r.end - r.start), r.start, r.entity_type)  # noqa: E731
    for r in sorted(results, key=key):
        if all(r.end <= c.start or r.start >= c.end for c in chosen):
            chosen.append(r)
    return sorted(chosen, key=lambda r: r.start)
