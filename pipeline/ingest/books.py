"""Book reader: plain-text books (.txt/.txt.gz), with Project Gutenberg boilerplate removed."""

from __future__ import annotations

import re
from typing import Any

import polars as pl

from pipeline.ids import doc_id

from ._common import Sink
from ._decode import decode_text, normalize_newlines
from ._decompress import read_document_bytes
from .config import IngestConfig, InputFile

# Modern markers: "*** START OF THE/THIS PROJECT GUTENBERG EBOOK X ***" (may wrap onto the next line).
_START_RE = re.compile(r"^\s*\*{3}\s*START OF (THE|THIS) PROJECT GUTENBERG", re.I)
# 1990s header: the licence ("small print") comes first and ends with this line.
_OLD_END_RE = re.compile(r"^\s*\*+\s*END\s*\*+\s*THE SMALL PRINT", re.I)
_END_RES = (
    re.compile(r"^\s*\*{3}\s*END OF (THE|THIS) PROJECT GUTENBERG", re.I),
    re.compile(r"^\s*End of (the |this )?Project Gutenberg", re.I),
    re.compile(r"^\s*\*{3}\s*START:? FULL LICEN[SC]E", re.I),
    re.compile(r"^\s*\*+\s*START\s*\*+\s*THE SMALL PRINT", re.I),
)
# Producer credits / PG notes that sit just inside the markers ("This etext was prepared by ...").
_PG_NOTE_RE = re.compile(
    r"project\s+gutenberg|gutenberg\.(org|net)|distributed\s+proofread|pgdp\.net|\be-?texts?\b", re.I
)
_TITLE_RE = re.compile(r"^\s*Title:\s*(.+)$", re.M)
_EBOOK_NO_RE = re.compile(r"\[\s*E-?(?:Book|text)\s*#\s*(\d+)\s*\]", re.I)
_HEAD_PARAS = 8
_TAIL_PARAS = 4


def _marker_close(lines: list[str], i: int) -> int:
    """Index of the line after a START marker that may wrap: it ends at the line closing ``***``."""
    first = lines[i].strip().lstrip("*")
    if "***" in first or first.endswith("*"):
        return i + 1
    for j in range(i + 1, min(i + 4, len(lines))):
        if lines[j].rstrip().endswith("*"):
            return j + 1
        if not lines[j].strip():
            break
    return i + 1


def strip_gutenberg(text: str) -> tuple[str, str | None, dict[str, Any]]:
    """Remove the Project Gutenberg header, footer and licence from a book.

    Returns (body, style, info): ``style`` is "modern", "old" or None (no markers, text kept
    whole); ``info`` holds the title / ebook number read from the header when present.
    """
    lines = text.split("\n")
    n = len(lines)
    half = n // 2
    start = None
    style = None
    for i, line in enumerate(lines[: max(half, 1)]):
        if _START_RE.match(line):
            start, style = _marker_close(lines, i), "modern"
            break
    # Old style: body after "*END*THE SMALL PRINT...". With a modern header, only the first half
    # counts (later small print is a footer licence); without one, a very short header-less text
    # (pg4) can have its small print past the middle, so look further, but not at the very end.
    limit = max(half, 1) if start is not None else n
    for i, line in enumerate(lines[:limit]):
        if _OLD_END_RE.match(line) and (start is None or i + 1 > start):
            if start is None and i > half and sum(map(len, lines[i + 1 :])) < 0.1 * len(text):
                break
            start, style = i + 1, "old"
            break
    end = None
    for i in range(start or 0, n):
        if any(r.match(lines[i]) for r in _END_RES):
            if start is None and i < half:
                continue  # no header found and this is not near the end: not a footer
            end = i
            style = style or "modern"
            break
    if style is None:
        return text, None, {}
    info: dict[str, Any] = {}
    header = "\n".join(lines[: start or 0])
    if m := _TITLE_RE.search(header):
        info["title"] = m.group(1).strip()
    if m := _EBOOK_NO_RE.search(header):
        info["gutenberg_id"] = int(m.group(1))
    body = _trim_notes(lines[start or 0 : end if end is not None else n])
    return body, style, info


def _trim_notes(lines: list[str]) -> str:
    """Drop the PG credit paragraphs just after the start marker and just before the end."""
    text = "\n".join(lines).strip("\n")
    paras = re.split(r"\n[ \t]*\n", text)
    head = 0
    for k, p in enumerate(paras[:_HEAD_PARAS]):
        if _PG_NOTE_RE.search(p):
            head = k + 1
    tail = len(paras)
    for k in range(len(paras) - 1, max(head, len(paras) - _TAIL_PARAS) - 1, -1):
        if _PG_NOTE_RE.search(paras[k]):
            tail = k
    return "\n\n".join(paras[head:tail]).strip("\n")


def read_book(f: InputFile, cfg: IngestConfig) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One document per text file: decoded, newlines normalised, Gutenberg boilerplate removed."""
    sink = Sink(f, cfg, "book")
    data = read_document_bytes(sink, f, cfg)
    if data is None:
        return sink.frames()
    decoded = decode_text(data, cfg)
    if decoded is None:
        sink.reject(None, "binary content")
        return sink.frames()
    text, encoding = decoded
    body, style, info = strip_gutenberg(normalize_newlines(text))
    meta: dict[str, Any] = {"encoding": encoding, "gutenberg": style is not None, **info}
    if style:
        meta["gutenberg_style"] = style
    parts = split_paragraphs(body, cfg.book_max_chars)
    if len(parts) <= 1:
        sink.doc(None, body, meta=meta)
        return sink.frames()
    # Parts keep the whole book's id as group_id, so dedup and the split can act per book.
    group = doc_id(f.display, None)
    for k, part in enumerate(parts):
        sink.doc(f"part{k}", part, meta={**meta, "part": k, "n_parts": len(parts)}, group_id=group)
    return sink.frames()


def split_paragraphs(text: str, max_chars: int) -> list[str]:
    """Cut ``text`` into pieces of at most ``max_chars`` characters, at paragraph breaks.

    A paragraph longer than ``max_chars`` is cut at line breaks, and a line longer than that
    at the last space before the limit (a hard cut only when there is none).
    """
    if max_chars <= 0 or len(text) <= max_chars:
        return [text]
    units: list[str] = []
    for para in re.split(r"(?<=\n\n)", text):
        if len(para) <= max_chars:
            units.append(para)
            continue
        for line in para.splitlines(keepends=True):
            while len(line) > max_chars:
                cut = line.rfind(" ", 0, max_chars) + 1 or max_chars
                units.append(line[:cut])
                line = line[cut:]
            units.append(line)
    parts: list[str] = []
    cur: list[str] = []
    size = 0
    for u in units:
        if size + len(u) > max_chars and cur:
            parts.append("".join(cur))
            cur, size = [], 0
        cur.append(u)
        size += len(u)
    if cur:
        parts.append("".join(cur))
    parts = [p.strip("\n") for p in parts]
    return [p for p in parts if p.strip()]
