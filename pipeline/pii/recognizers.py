"""Custom presidio recognizers for secrets in code and text, and for credentials inside URLs; and the rewritten
views through which obfuscated and encoded PII is read.

Each secret recognizer wraps one pattern of ``pipeline.pii.secret_patterns``: a regex with a named group ``v`` (the span
to replace: a password, not the word "password"; the ``user:pass`` of a URL, not its host) and an optional
validator. They are plain presidio ``EntityRecognizer`` subclasses, so they sit in the same registry as
presidio's own recognizers.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from dataclasses import dataclass

from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

from pipeline.pii.secret_patterns import SecretPattern, password_span


class SecretRecognizer(EntityRecognizer):
    """One secret type: regex, value group, optional validator; a fixed score (the shapes are specific)."""

    def __init__(self, pattern: SecretPattern) -> None:
        self.pattern = pattern
        self.regex = re.compile(pattern.regex)
        super().__init__(supported_entities=[pattern.entity], name=f"Refinery{pattern.entity.title()}Recognizer")

    def load(self) -> None:  # nothing to load; required by EntityRecognizer
        pass

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None) -> list:
        out: list[RecognizerResult] = []
        if self.pattern.entity not in entities:
            return out
        for m in self.regex.finditer(text):
            if self.pattern.entity == "PASSWORD":
                span = password_span(m)
            elif self.pattern.validate is None or self.pattern.validate(m):
                span = (m.start("v"), m.end("v"))
            else:
                span = None
            if span is not None:
                out.append(RecognizerResult(self.pattern.entity, span[0], span[1], self.pattern.score))
        return out


# ------------------------------------------------------------------------------ obfuscated and encoded forms
#
# PII written so that the recognizers above cannot read it ("jane [at] example [dot] com", "jane%40example.com",
# "+1%20415%20555%200134", a phone number broken across a line) is read through a *view*: a copy of the text in
# which each such span is rewritten to its plain form ("jane@example.com", "+1 415 555 0134"), one character per
# rewritten chunk, so that every view character maps back to one contiguous chunk of the original (``ViewMap``). The
# recognizers and guards then run on the view unchanged, and their findings map back to original offsets.

# A rewrite: original [start, end) becomes the single character ``char`` in the view.
Edit = tuple[int, int, str]

_DOT_BRACKETED = r"[ \t]*[\[({<][ \t]*(?:dot|DOT|Dot)[ \t]*[\])}>][ \t]*"
_DOT_SPELLED = r"[ \t]+(?:dot|DOT)[ \t]+"
_LOCAL_WORD = r"[A-Za-z0-9][A-Za-z0-9_+\-]*"
_LABEL = r"[A-Za-z0-9][A-Za-z0-9\-]*"
_SEP = rf"(?:\.|{_DOT_BRACKETED}|{_DOT_SPELLED})"

_FILE_EXT = r"\.(?:txt|jsonl|ndjson|json|html|htm|parquet|gz|zst|warc|wet|md|csv|py|log)\b"
_AFTER_BREAK = r"[ \t]*\r?\n[ \t]*[0-9][0-9 \-.]{2,12}[0-9]"
# Cheap polars checks (Rust regex syntax, no look-arounds), each led by a literal or a small class the regex
# crate can skip ahead to: a document goes through the Python rewrite only when one of them matches.
VIEW_TRIGGERS: dict[str, str] = {
    # "[at]", "(at)", "{AT}"
    "obfuscated_at": r"[\[({<][ \t]*(?:at|AT|At)[ \t]*[\])}>]",
    # "name at host dot tld": a spelled-out "at" followed by a word and a spelled-out "dot"
    "spelled_at": r"[ \t](?:at|AT)[ \t]+[A-Za-z0-9][A-Za-z0-9\-]*[ \t]+(?:dot|DOT)[ \t]+[A-Za-z]",
    "percent_email": r"%40[A-Za-z0-9]",
    # a percent-encoded "+", space, bracket, dash or dot before a digit, or a query value of digit groups
    # joined by "+" (form encoding of spaces)
    "percent_phone": r"%2[0BbDdEe89][0-9(]",
    "query_phone": r"=\+?[0-9]{1,4}\+[0-9]",
    # a phone number whose groups go on after a line break: it starts with "+country" or "(area)" and has a group
    # before the break, or the line ends in a group and a dash or dot (three patterns: each is led by what the
    # regex crate can skip ahead to, where their alternation would try every digit)
    "line_phone_plus": r"\+[0-9]{1,3}[ \-.]?(?:\(?[0-9]{1,5}\)?[ \-.]?){1,3}" + _AFTER_BREAK,
    "line_phone_paren": r"\([0-9]{2,5}\)[ \-.]?(?:[0-9]{1,5}[ \-.]?){1,2}" + _AFTER_BREAK,
    "line_phone_dash": r"[0-9]{2,5}[\-.][0-9]{2,5}[\-.]" + _AFTER_BREAK,
    # an address used as a file name: "ann@example.com.jsonl" (the extension hides the real top-level domain)
    "file_ext_email": r"@[A-Za-z0-9][A-Za-z0-9\-]*(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}" + _FILE_EXT,
}

# The "at" forms, found without their surrounding blanks (a leading "[ \t]*" would retry every position of
# the long runs of spaces that pages and code hold); the blanks are added to the span afterwards.
_OBF_AT = re.compile(r"[\[({<][ \t]*(?:at|AT|At)[ \t]*[\])}>]|[ \t](?:at|AT)[ \t]")
_OBF_LOCAL = re.compile(rf"{_LOCAL_WORD}(?:{_SEP}{_LOCAL_WORD})*\Z")
_OBF_LABEL = re.compile(_LABEL)
_OBF_NEXT_LABEL = re.compile(rf"{_SEP}({_LABEL})")
_OBF_SEP = re.compile(rf"{_DOT_BRACKETED}|{_DOT_SPELLED}")
# found from their "%40": a pattern that starts at the local part would retry every position of the long
# runs of percent-encoded characters that HTML is full of
_PCT_AT = re.compile(r"%40(?=[A-Za-z0-9])")
_PCT_LOCAL = re.compile(r"(?:[A-Za-z0-9._+\-]|%[0-9A-Fa-f]{2})+\Z")
_PCT_DOMAIN = re.compile(r"[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+")
_PCT_PHONE = re.compile(r"(?:%2[Bb]|\+)?\(?[0-9]{1,4}\)?(?:(?:%2[0BbDdEe89]|[+\-.()])+\(?[0-9]{1,5}\)?){2,6}")
# where to look for them: literal-led patterns, which Python's ``re`` scans for quickly (the trigger's leading
# character class would make it try every position)
_PCT_PHONE_HIT = re.compile(r"%2[0BbDdEe89](?:%2[0BbDdEe89])*[0-9(]|=\+?[0-9]{1,4}\+[0-9]")
_PCT = re.compile(r"%([0-9A-Fa-f]{2})")
_QUERY_KEY_BEFORE = re.compile(r"[?&][A-Za-z_\-]*=\Z")
_LINE_PHONE = re.compile("|".join(VIEW_TRIGGERS[k] for k in ("line_phone_plus", "line_phone_paren", "line_phone_dash")))
_LINE_BREAK = re.compile(r"[ \t]*\r?\n[ \t]*")

# Top-level domains a spelled-out address may end with: common ones that are not English words ("dot it",
# "dot in", "dot me", "dot to", "dot at" are prose far more often than addresses).
OBFUSCATED_TLDS = frozenset(
    "com org net edu gov mil int info biz io ai co uk de fr nl ru jp cn br au ca ch es se pl dk fi cz eu nz za "
    "kr tw hk sg ar mx pt gr hu ro ua ie il tv cc".split()
)
# Words that stand before "at" or after it in prose ("look at him dot ...", "was at home dot com"): a spelled-out
# address never has them as its local part or a domain label. Bracketed forms ("[at]") need no such list.
_PROSE_BEFORE_AT = frozenset(
    "look looked looking looks stare stared staring glance glanced glancing smile smiled laugh laughed arrive "
    "arrived arrives arriving stay stayed staying meet met be is are was were been am him her me us them it that "
    "this those these there here home work sit sat stand stood aim aimed point pointed shot fire fired born live "
    "lived lives who which what where and or but not only all even just still up down out in on off away back "
    "once least last first one ones time times sold bought priced valued started began ended buy buying shop "
    "shopping shopped order ordered available find found visit visited visiting see seen get got go goes went "
    "sign signed log logged online now".split()
)
_PROSE_AFTER_AT = frozenset(
    "the a an his her my your our their its this that these those all any some one once least last first home "
    "work school night noon dawn dusk sea table hand".split()
)


def _spelled_ok(local: str, at: str, domain: str) -> bool:
    """A spelled-out "at" (no brackets) counts only with spelled-out dots in the domain, in the same case as
    the "at", and with no prose word as the local part or a domain label."""
    seps = _OBF_SEP.findall(domain)
    if "." in _OBF_SEP.sub("", domain) or not seps:
        return False
    bare = [s.strip(" \t[](){}<>") for s in seps]
    if any(s.isupper() != at.strip().isupper() for s in bare):
        return False
    labels = _OBF_SEP.sub(" ", domain).lower().split()
    words = _OBF_SEP.sub(" ", local).lower().split()
    return words[-1] not in _PROSE_BEFORE_AT and not any(lab in _PROSE_AFTER_AT for lab in labels)


def _blanks_before(text: str, i: int, most: int = 8) -> int:
    stop = max(0, i - most)
    while i > stop and text[i - 1] in " \t":
        i -= 1
    return i


def _blanks_after(text: str, i: int, most: int = 8) -> int:
    stop = min(len(text), i + most)
    while i < stop and text[i] in " \t":
        i += 1
    return i


def _domain_end(text: str, pos: int, most: int = 6) -> int | None:
    """End of the longest run of (at most ``most``) labels from ``pos`` whose last label is a top-level domain
    of ``OBFUSCATED_TLDS`` ("host dot com" in "host dot com.Next"); None when there is none."""
    m = _OBF_LABEL.match(text, pos)
    if m is None:
        return None
    end, best = m.end(), None
    for _ in range(most):
        nxt = _OBF_NEXT_LABEL.match(text, end)
        if nxt is None:
            break
        end = nxt.end()
        if nxt.group(1).lower() in OBFUSCATED_TLDS:
            best = end
    return best


def _obfuscated_emails(text: str) -> list[Edit]:
    """Rewrites for "name [at] host [dot] com", "name (at) host.com", "name at host dot org", "NAME AT HOST DOT
    ORG", "first dot last at host dot com": each "at" form becomes "@", each "dot" form "."."""
    edits: list[Edit] = []
    for m in _OBF_AT.finditer(text):
        at_start, at_end = _blanks_before(text, m.start()), _blanks_after(text, m.end())
        end = _domain_end(text, at_end)
        local = _OBF_LOCAL.search(text, max(0, at_start - 64), at_start) if end is not None else None
        if end is None or local is None:
            continue
        at, domain = text[at_start:at_end], text[at_end:end]
        if not any(b in at for b in "[({<") and not _spelled_ok(local.group(), at, domain):
            continue
        edits.extend((s.start(), s.end(), ".") for s in _OBF_SEP.finditer(text, local.start(), local.end()))
        edits.append((at_start, at_end, "@"))
        edits.extend((s.start(), s.end(), ".") for s in _OBF_SEP.finditer(text, at_end, end))
    return edits


def _decoded(text: str, start: int, end: int, plus_is_space: bool) -> list[Edit]:
    """Rewrites decoding the printable ASCII percent-escapes in [start, end), and "+" between digits when
    ``plus_is_space`` (form encoding)."""
    edits: list[Edit] = []
    for m in _PCT.finditer(text, start, end):
        code = int(m.group(1), 16)
        if 0x20 <= code < 0x7F:
            edits.append((m.start(), m.end(), chr(code)))
    if plus_is_space:
        edits.extend(
            (i, i + 1, " ")
            for i in range(start + 1, end - 1)
            if text[i] == "+" and text[i - 1].isdigit() and text[i + 1].isdigit()
        )
    return sorted(edits)


def _windows_around(pattern: re.Pattern[str], text: str, before: int, after: int) -> list[tuple[int, int]]:
    """Merged windows reaching ``before`` characters before and ``after`` past each match of ``pattern``: the
    costlier pattern then runs there only, not from every digit of a digit-heavy page."""
    out: list[tuple[int, int]] = []
    for m in pattern.finditer(text):
        s, e = max(0, m.start() - before), min(len(text), m.end() + after)
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out


def _percent_encoded(text: str) -> list[Edit]:
    """Rewrites for percent-encoded e-mail addresses ("jane.doe%40example.com") and phone numbers in query
    strings ("tel=%2B1%20415%20555%200134", "phone=415+555+0134")."""
    edits: list[Edit] = []
    for m in _PCT_AT.finditer(text):
        local = _PCT_LOCAL.search(text, max(0, m.start() - 64), m.start())
        domain = _PCT_DOMAIN.match(text, m.end())
        if local is not None and domain is not None:
            edits.extend(_decoded(text, local.start(), domain.end(), plus_is_space=False))
    for start, end in _windows_around(_PCT_PHONE_HIT, text, 24, 48):
        for m in _PCT_PHONE.finditer(text, start, end):
            query = _QUERY_KEY_BEFORE.search(text, max(0, m.start() - 40), m.start()) is not None
            if "%" in m.group() or (query and "+" in m.group()[1:]):
                edits.extend(_decoded(text, m.start(), m.end(), plus_is_space=True))
    return edits


def _line_phones(text: str) -> list[Edit]:
    """Rewrites joining a phone number broken across a line: each character of the break becomes a space (the
    view keeps the original's length)."""
    edits: list[Edit] = []
    for m in _LINE_PHONE.finditer(text):
        brk = _LINE_BREAK.search(text, m.start(), m.end())
        if brk is not None:
            edits.extend((i, i + 1, " ") for i in range(brk.start(), brk.end()) if text[i] in "\r\n")
    return edits


_FILE_EXT_EMAIL = re.compile(r"@[A-Za-z0-9][A-Za-z0-9\-]*(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}(?=" + _FILE_EXT + ")")


def _file_ext_emails(text: str) -> list[Edit]:
    """Read the dot before a file extension that follows an address as a blank, so the address ends there."""
    return [(m.end(), m.end() + 1, " ") for m in _FILE_EXT_EMAIL.finditer(text)]


VIEW_REWRITES: dict[str, Callable[[str], list[Edit]]] = {
    "obfuscated_at": _obfuscated_emails,
    "spelled_at": _obfuscated_emails,
    "percent_email": _percent_encoded,
    "percent_phone": _percent_encoded,
    "query_phone": _percent_encoded,
    "line_phone_plus": _line_phones,
    "line_phone_paren": _line_phones,
    "line_phone_dash": _line_phones,
    "file_ext_email": _file_ext_emails,
}


@dataclass(frozen=True)
class ViewMap:
    """View offsets to original ones: ``at[k]`` is where the view character of the k-th rewrite sits in the
    view, ``shift[k]`` how many characters the rewrites before it removed (``shift`` has one more item)."""

    at: list[int]
    shift: list[int]

    def original(self, offset: int) -> int:
        """The original offset of view ``offset`` (a start, or an end: the view's end of a rewritten character
        is the end of its original chunk)."""
        return offset + self.shift[bisect.bisect_left(self.at, offset)]


def view_of(text: str, rules: list[str]) -> tuple[str, ViewMap] | None:
    """``text`` as the recognizers should read it, after the rewrites of ``rules`` (names of ``VIEW_TRIGGERS``
    that matched it), and the map back to its offsets; None when nothing was rewritten."""
    edits: list[Edit] = []
    for fn in dict.fromkeys(VIEW_REWRITES[r] for r in rules):
        edits.extend(fn(text))
    if not edits:
        return None
    edits.sort()
    parts: list[str] = []
    at: list[int] = []
    shift = [0]
    pos = 0
    for start, end, char in edits:
        if start < pos:  # overlaps an earlier rewrite: keep the first
            continue
        parts.append(text[pos:start])
        at.append(start - shift[-1])
        shift.append(shift[-1] + end - start - 1)
        parts.append(char)
        pos = end
    parts.append(text[pos:])
    return "".join(parts), ViewMap(at, shift)
