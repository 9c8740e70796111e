"""Decoding input bytes to text: byte order marks, declared and detected charsets, UTF-16/32, binary checks."""

from __future__ import annotations

import codecs
import re
import unicodedata

from .config import IngestConfig

# Control characters that do not occur in real text (tab, LF, VT/FF, CR and ESC are allowed).
_CTRL_RE = re.compile(r"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f]")
_META_CHARSET_RE = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_CT_CHARSET_RE = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9_.:-]+)", re.I)


def charset_from_content_type(ct: str | None) -> str | None:
    if not ct:
        return None
    m = _CT_CHARSET_RE.search(ct)
    return m.group(1) if m else None


def _codec(name: str | None) -> str | None:
    """Python codec for a declared charset, or None when unknown.

    Latin-1 declarations are read as cp1252 (as browsers do): pages labelled iso-8859-1 very
    often contain cp1252 quotes, and cp1252 agrees with latin-1 on every printable byte.
    """
    if not name:
        return None
    try:
        codec = codecs.lookup(name.strip().lower()).name
    except LookupError:
        return None
    if codec in ("latin-1", "iso8859-1", "ascii"):
        return "cp1252"
    return codec


def ctrl_ratio(text: str) -> float:
    if not text:
        return 0.0
    return len(_CTRL_RE.findall(text)) / len(text)


def decode_html(data: bytes, http_charset: str | None = None) -> tuple[str, str]:
    """Decode HTML bytes: a byte order mark, else HTTP charset, else ``<meta>`` charset, else UTF-8,
    else detection.

    Returns (text, how) where ``how`` names the encoding and where it came from. A BOM wins over
    any declaration, as in browsers: a UTF-16 page read as its declared charset is all NULs.
    """
    if (bom := bom_codec(data)) is not None:
        codec, size = bom
        return data[size:].decode(codec, errors="replace"), f"{codec} (bom)"
    for origin, name in (("http", http_charset), ("meta", _meta_charset(data))):
        codec = _codec(name)
        if codec:
            return data.decode(codec, errors="replace"), f"{codec} ({origin})"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    codec = _detect(data) or "cp1252"
    return data.decode(codec, errors="replace"), f"{codec} (detected)"


def _meta_charset(data: bytes) -> str | None:
    m = _META_CHARSET_RE.search(data[:8192])
    return m.group(1).decode("ascii", "replace") if m else None


def _detect(data: bytes, candidates: list[str] | None = None) -> str | None:
    from charset_normalizer import from_bytes

    best = from_bytes(data[: 1 << 20], cp_isolation=candidates).best()
    return _codec(best.encoding) if best is not None else None


def decode_text(data: bytes, cfg: IngestConfig) -> tuple[str, str] | None:
    """Decode a plain-text file (UTF-16/32 by BOM or plain UTF-16, else UTF-8, else detected between
    latin-1/cp1252); None when binary."""
    if (wide := wide_codec(data)) is not None:
        return decode_wide(data, *wide, cfg)
    if b"\x00" in data:
        return None
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        text, enc = data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        codec = _detect(data, ["cp1252", "latin_1"]) or "cp1252"
        try:
            text, enc = data.decode(codec), codec
        except UnicodeDecodeError:
            # cp1252 leaves five bytes undefined; latin-1 decodes anything.
            text, enc = data.decode("latin-1"), "latin-1"
    if ctrl_ratio(text[:65536]) > cfg.binary_ctrl_ratio:
        return None
    return text, enc


# Byte order marks, the UTF-32 ones first: the UTF-32 LE mark starts with the UTF-16 LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"), (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"),
)  # fmt: skip


def bom_codec(data: bytes) -> tuple[str, int] | None:
    """(codec, BOM length) when ``data`` starts with a Unicode byte order mark."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return codec, len(bom)
    return None


def utf16_without_bom(data: bytes) -> str | None:
    """``"utf-16-le"``/``"utf-16-be"`` when ``data`` is plainly UTF-16 without a BOM, else None.

    Only the clear case: mostly ASCII-range characters, so that one byte of nearly every pair is NUL
    and the other nearly never (a run of NULs in binary data fills both). UTF-16 of other scripts has
    few NULs and is not guessed.
    """
    sample = data[:4096]
    if len(data) % 2 or len(sample) < 16:
        return None
    pairs = len(sample) // 2
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    if odd >= 0.9 * pairs and even <= 0.01 * pairs:
        return "utf-16-le"
    if even >= 0.9 * pairs and odd <= 0.01 * pairs:
        return "utf-16-be"
    return None


def wide_codec(data: bytes) -> tuple[str, int] | None:
    """(codec, BOM length) of UTF-16/UTF-32 text, by its BOM or, without one, by ``utf16_without_bom``;
    None for anything else (a UTF-8 BOM included: the callers' UTF-8 path handles it).

    These files are full of NUL bytes, which the callers otherwise take for binary content.
    """
    bom = bom_codec(data)
    if bom is not None:
        return bom if bom[0] != "utf-8" else None
    guess = utf16_without_bom(data)
    return (guess, 0) if guess is not None else None


def decode_wide(data: bytes, codec: str, skip: int, cfg: IngestConfig) -> tuple[str, str] | None:
    """(text, codec) of ``data[skip:]`` in a UTF-16/32 ``codec``; None when it reads as binary.

    Nearly any pair of bytes is some UTF-16 character, so binary data behind a BOM decodes without
    error: it shows as control, private-use, unassigned or undecodable characters, which text lacks.
    """
    text = data[skip:].decode(codec, errors="replace")
    head = text[:4096]
    odd = sum(unicodedata.category(c) in ("Cc", "Co", "Cn", "Cs") and c not in "\t\n\x0b\f\r\x1b" for c in head)
    if odd + head.count("\ufffd") > cfg.binary_ctrl_ratio * len(head):
        return None
    return text, codec


def normalize_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")
