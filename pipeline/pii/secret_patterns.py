"""Secret patterns (cloud keys, GitHub/GitLab/Slack tokens, private keys, JWTs, passwords, URL credentials) and
their validators: plain regexes and functions, importable without presidio (the ``pii`` stage's config reads the
entity names from here; ``pipeline.pii.recognizers`` wraps each pattern as a presidio recognizer).

Each pattern is one regex with a named group ``v`` (the span to replace: a password, not the word "password";
the ``user:pass`` of a URL, not its host), a cheap candidate pre-check and an optional validator.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from dataclasses import dataclass

# Values of a "password = ..." assignment that are code or templates, not a secret.
_NOT_A_VALUE = re.compile(r"[{}$%<>()\[\]\\]|^\*+$|^x+$|^\.+$", re.IGNORECASE)
_IDENTIFIER = re.compile(r"^[A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*$")
_PLACEHOLDER_WORDS = {
    "password", "passwd", "pwd", "secret", "token", "none", "null", "true", "false", "required", "optional",
    "string", "changeme", "example", "your_password", "yourpassword", "mypassword", "xxxxxx", "redacted",
}  # fmt: skip


def _placeholder(value: str) -> bool:
    """ "sk-...", "your@login", "PASSWORD", "pass": documentation, not a secret."""
    low = value.lower()
    return low in _PLACEHOLDER_WORDS or low == "pass" or "..." in value or "\u2026" in value or "your" in low


def _valid_password(value: str, quoted: bool) -> bool:
    if len(value) < 6 or _NOT_A_VALUE.search(value) or _placeholder(value):
        return False
    if not quoted:
        # Unquoted values (.env, ini, query strings) must not read as code: identifiers, attribute access.
        # A value that reads as an identifier ("config.password", "DB_PASS", "MyPasswordField") counts only
        # when it mixes upper and lower case with digits ("Xk9.mQ2p") or reads as random letters
        # ("KnCvtliz_EBjS": far fewer vowels than the words identifiers are made of).
        if _IDENTIFIER.match(value):
            mixed = any(c.isupper() for c in value) and any(c.islower() for c in value)
            letters = [c for c in value.lower() if c.isalpha()]
            vowels = sum(c in "aeiou" for c in letters) / max(1, len(letters))
            return mixed and (any(c.isdigit() for c in value) or (len(letters) >= 8 and vowels < 0.2))
    return True


def _b64json(part: str) -> dict | None:
    try:
        data = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _valid_jwt(value: str) -> bool:
    header = _b64json(value.split(".", 1)[0])
    return header is not None and ("alg" in header or "typ" in header)


@dataclass(frozen=True)
class SecretPattern:
    entity: str
    regex: str  # full pattern, with a named group "v" for the replaced span
    candidate: str  # cheap over-inclusive pre-check (polars/Rust regex syntax, also valid for Python re)
    score: float = 1.0
    validate: Callable[[re.Match[str]], bool] | None = None


_PASSWORD_KEY = r"(?:pass(?:word|wd|phrase)?|pwd|secret(?:_?key)?|api[_-]?key|(?:access|auth|api)[_-]?token)"

SECRET_PATTERNS: dict[str, SecretPattern] = {
    p.entity: p
    for p in (
        SecretPattern(
            "AWS_ACCESS_KEY",
            r"(?<![A-Za-z0-9])(?P<v>(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16})(?![A-Za-z0-9])",
            r"A(?:KI|SI|BI|CC|GP|ID|RO|NP|NV|IP)A[A-Z0-9]{16}",
        ),
        SecretPattern(
            "GITHUB_TOKEN",
            r"(?<![A-Za-z0-9_])(?P<v>gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{22,255})(?![A-Za-z0-9_])",
            r"gh[pousr]_[A-Za-z0-9]{36}|github_pat_",
        ),
        SecretPattern(
            "GITLAB_TOKEN",
            r"(?<![A-Za-z0-9_])(?P<v>gl(?:pat|dt|rt|ptt|cbt|oas)-[A-Za-z0-9_\-]{20,64})(?![A-Za-z0-9_\-])",
            r"gl(?:pat|dt|rt|ptt|cbt|oas)-[A-Za-z0-9_\-]{20}",
        ),
        SecretPattern(
            "SLACK_TOKEN",
            r"(?P<v>(?<![A-Za-z0-9])xox[abposre]-(?:[0-9]+-)+[A-Za-z0-9\-]{8,}"
            r"|https://hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9/_\-]{20,})",
            r"xox[abposre]-[0-9]+-|hooks\.slack\.com/",
        ),
        SecretPattern(
            "PRIVATE_KEY",
            r"(?P<v>-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
            r"(?:[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
            r"|(?:\s*(?:[A-Za-z0-9+/=]{32,}|[A-Za-z\-]+: [^\n]*))*))",  # truncated: header and base64 lines
            r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY",
        ),
        SecretPattern(
            "JWT",
            # the look-behind after "eyJ", not before: the same matches, and Python's ``re`` then skips
            # ahead to each "eyJ" (it scans a literal prefix fast, and JWT windows come from this regex)
            r"(?P<v>eyJ(?<![A-Za-z0-9_\-]eyJ)[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{16,})",
            r"eyJ[A-Za-z0-9_\-]{8,}\.eyJ",
            validate=lambda m: _valid_jwt(m.group("v")),
        ),
        SecretPattern(
            "PASSWORD",
            # key (any prefix: DB_PASSWORD, "api_key"), optional closing quote, "=" or ":", then the value:
            # a quoted literal, or a bare token up to whitespace / separator
            r"(?i)(?<![A-Za-z0-9])[\w.\-]*" + _PASSWORD_KEY + r"\w*[\"']?[ \t]*(?::=|=|:)[ \t]*"
            r"(?:(?P<q>[\"'])(?P<v>[^\"'\s]{6,128})(?P=q)|(?P<v2>[^\s\"'`,;&)\]}>]{6,128}))",
            r"(?i)" + _PASSWORD_KEY + r"\w*[\"']?[ \t]*(?::=|=|:)[ \t]*[\"']?[^\s\"']{6}",
        ),
        SecretPattern(
            "URL_CREDENTIALS",
            r"(?i)\b[a-z][a-z0-9+.\-]{1,15}://(?P<v>[^\s:/@\"'<>]+:[^\s/@\"'<>]+)@[\w\-]",
            r"://[^\s:/@]+:[^\s/@]+@[\w\-]",
            validate=lambda m: not _placeholder(m.group("v").split(":", 1)[1]),  # "user:pass@", "USER:PASSWORD@"
        ),
    )
}


def password_span(m: re.Match[str]) -> tuple[int, int] | None:
    """The span of a PASSWORD match's value (quoted group ``v`` or bare group ``v2``); None when the value
    reads as code, a template or a placeholder, not a secret."""
    if m.group("v") is not None:
        return (m.start("v"), m.end("v")) if _valid_password(m.group("v"), quoted=True) else None
    return (m.start("v2"), m.end("v2")) if _valid_password(m.group("v2"), quoted=False) else None
