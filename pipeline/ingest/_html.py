"""HTML helpers for the readers: title, canonical URL and head metadata, script stripping, main-text extraction."""

from __future__ import annotations

import re
import threading

from .config import IngestConfig

_TITLE_RE = re.compile(r"<title[^>]*>(.*?)</title>", re.I | re.S)
_CANON_RE = re.compile(r"<link\b[^>]*\brel\s*=\s*[\"']?canonical[\"']?[^>]*>", re.I)
_OGURL_RE = re.compile(r"<meta\b[^>]*\bproperty\s*=\s*[\"']og:url[\"'][^>]*>", re.I)
_HREF_RE = re.compile(r"\bhref\s*=\s*[\"']([^\"']+)[\"']", re.I)
_CONTENT_RE = re.compile(r"\bcontent\s*=\s*[\"']([^\"']+)[\"']", re.I)
_WS_RE = re.compile(r"\s+")


def html_title(html: str) -> str | None:
    m = _TITLE_RE.search(html[:65536])
    if not m:
        return None
    import html as htmllib

    title = _WS_RE.sub(" ", htmllib.unescape(m.group(1))).strip()
    return title or None


_HTML_LANG_RE = re.compile(r"<html\b[^>]*?\blang\s*=\s*[\"']?\s*([A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*)", re.I)
_META_TAG_RE = re.compile(r"<meta\b[^>]*>", re.I)
_META_NAME_RE = re.compile(r"\b(?:name|property|itemprop|http-equiv)\s*=\s*[\"']([^\"']+)[\"']", re.I)
_DATE_KEYS = ("article:published_time", "datepublished", "date", "dc.date", "dc.date.issued",
              "dcterms.date", "og:published_time", "pubdate", "publish-date", "sailthru.date")  # fmt: skip
_LANG_KEYS = ("content-language", "language", "dc.language", "og:locale")


def html_head_meta(html: str) -> dict[str, str]:
    """The page's declared language (``<html lang>``, else a language meta tag) and publication
    date (``article:published_time`` and similar meta tags), when present."""
    head = html[:65536]
    out: dict[str, str] = {}
    if m := _HTML_LANG_RE.search(head):
        out["html_lang"] = m.group(1).replace("_", "-").lower()
    tags: dict[str, str] = {}
    for tag in _META_TAG_RE.findall(head):
        name, content = _META_NAME_RE.search(tag), _CONTENT_RE.search(tag)
        if name and content and content.group(1).strip():
            tags.setdefault(name.group(1).strip().lower(), content.group(1).strip())
    if "html_lang" not in out:
        lang = next((tags[k] for k in _LANG_KEYS if k in tags), None)
        if lang:
            out["html_lang"] = lang.split(",")[0].strip().replace("_", "-").lower()
    date = next((tags[k] for k in _DATE_KEYS if k in tags), None)
    if date:
        out["date"] = date[:64]
    return out


def html_url(html: str) -> str | None:
    """Canonical URL of a stand-alone page: ``<link rel=canonical>``, else ``og:url``."""
    head = html[:65536]
    for tag_re, attr_re in ((_CANON_RE, _HREF_RE), (_OGURL_RE, _CONTENT_RE)):
        for tag in tag_re.findall(head):
            m = attr_re.search(tag)
            if m and m.group(1).strip():
                return m.group(1).strip()
    return None


def extract_page_text(html: str, cfg: IngestConfig, url: str | None = None) -> tuple[str | None, str]:
    """(text, how) of a page: the configured extractor (``how="main"``), else the fallback.

    Script and style bodies and comments are cut first: they are never text, and a 20 MB script
    made trafilatura give up (it refuses pages over 20 MB) and cost memory (on the 629 benchmark
    pages this changed one output, for the better). When the extractor still finds nothing (it
    also gives up on HTML nested deeper than lxml's 255 levels), a plain-text pass
    (``how="fallback"``) keeps the page if it holds at least one real paragraph.
    """
    lean = strip_scripts(html, comments=True)
    text = extract_with(cfg.extractor, lean, url=url, include_tables=cfg.include_tables)
    if text is not None and text.strip():
        return text, "main"
    text = fallback_text(lean)
    return (text, "fallback") if text is not None else (None, "none")


# Tags whose content is never page text, and HTML comments. No unbounded pattern: each step is a
# plain search from a moving position, so one pass stays linear even on hostile markup.
_CUT_OPEN_RE = re.compile(r"<(script|style)\b|<!--", re.I)
_CUT_CLOSE_RE = {"script": re.compile(r"</script\s*>", re.I), "style": re.compile(r"</style\s*>", re.I)}


def strip_scripts(html: str, comments: bool = False) -> str:
    """``html`` with the bodies of <script> and <style> emptied (tags kept), and comments removed
    when asked (always skipped over, so a ``<script`` inside a comment is left alone).

    An unclosed script, style or comment runs to the end of the page, as in a browser.
    """
    out: list[str] = []
    pos = 0
    while (m := _CUT_OPEN_RE.search(html, pos)) is not None:
        tag = m.group(1)
        if tag is None:  # comment
            end = html.find("-->", m.end())
            stop = len(html) if end < 0 else end + 3
            out.append(html[pos : m.start()] if comments else html[pos:stop])
            pos = stop
            continue
        gt = html.find(">", m.end())
        close = _CUT_CLOSE_RE[tag.lower()].search(html, gt + 1) if gt >= 0 else None
        if close is None:
            out.append(html[pos : gt + 1] if gt >= 0 else html[pos : m.start()])
            return "".join(out)
        out.append(html[pos : gt + 1])
        pos = close.start()
    if not out:
        return html
    out.append(html[pos:])
    return "".join(out)


# A fallback text is kept only with a line of at least this many words: a page of menus and links
# stays "no main text", as the extractor said.
_FALLBACK_MIN_WORDS = 12
_TAG_RE = re.compile(r"<[^<>]{0,4096}>")
_BLOCK_TAG_RE = re.compile(r"<(?:/?(?:p|div|br|li|h[1-6]|tr|td|th|section|article|blockquote|pre)\b)[^<>]{0,4096}>",
                           re.I)  # fmt: skip


# resiliparse's main-content pass slows down about with the square of the nesting depth (3.5 s at
# 10,000 levels, minutes at 100,000); its whole-page pass stays fast.
_MAIN_CONTENT_MAX_DEPTH = 1000
_TAG_OPEN_RE = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]{0,31})")
_VOID_TAGS = frozenset("area base br col embed hr img input link meta param source track wbr".split())


def nesting_deeper_than(html: str, limit: int) -> bool:
    """Whether elements nest more than ``limit`` deep (counted on tags, stopping as soon as it is)."""
    depth = 0
    for m in _TAG_OPEN_RE.finditer(html):
        if m.group(1):
            depth = max(depth - 1, 0)
        elif m.group(2).lower() not in _VOID_TAGS:
            depth += 1
            if depth > limit:
                return True
    return False


def fallback_text(html: str) -> str | None:
    """Plain text of a page the main-text extractor gave up on, or None without a real paragraph.

    resiliparse's main-content pass (not on very deep pages), else its whole-page text (it copes
    with deep nesting), else a simple tag stripper. ``html`` comes with scripts, styles and
    comments already cut.
    """
    deep = nesting_deeper_than(html, _MAIN_CONTENT_MAX_DEPTH)
    for main in (False,) if deep else (True, False):
        try:
            from resiliparse.extract.html2text import extract_plain_text

            text = extract_plain_text(html, main_content=main, preserve_formatting=True, alt_texts=False,
                                      comments=False, list_bullets=False)  # fmt: skip
        except Exception:  # noqa: BLE001 - a parser failure falls through to the tag stripper
            break
        if _has_paragraph(text):
            return text
    text = _strip_tags(html)
    return text if _has_paragraph(text) else None


def _strip_tags(html: str) -> str:
    import html as htmllib

    text = _TAG_RE.sub(" ", _BLOCK_TAG_RE.sub("\n", html))
    lines = (_WS_RE.sub(" ", htmllib.unescape(line)).strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def _has_paragraph(text: str | None) -> bool:
    return bool(text) and any(len(line.split()) >= _FALLBACK_MIN_WORDS for line in text.splitlines())


_TRAFILATURA_LOCK = threading.Lock()


def extract_with(extractor: str, html: str, url: str | None = None, include_tables: bool = False) -> str | None:
    """Run one named extractor (see ``IngestConfig.extractor``); None on failure or no text.

    ``trafilatura`` is trafilatura balanced; ``trafilatura_recall`` (the default) /
    ``trafilatura_precision`` set its ``favor_recall`` / ``favor_precision``; ``trafilatura_fast``
    skips its fallback extractors; ``trafilatura_defaults`` is ``trafilatura.extract(html)`` as
    shipped (the benchmark's reference); ``resiliparse`` is resiliparse's ``main_content``
    heuristic (about 10x faster, lower F1 on our ground truth).
    """
    try:
        if extractor == "resiliparse":
            from resiliparse.extract.html2text import extract_plain_text

            return extract_plain_text(html, main_content=True, preserve_formatting=True, alt_texts=False,
                                      comments=False, list_bullets=False)  # fmt: skip
        import trafilatura

        # trafilatura parses with one module-global lxml parser: two threads in it at once crashed the
        # process (segfault / double free with the shard map's thread pool), so one thread at a time.
        with _TRAFILATURA_LOCK:
            if extractor == "trafilatura_defaults":  # the library's own defaults, the benchmark's reference
                return trafilatura.extract(html, url=url)
            return trafilatura.extract(
                html,
                url=url,
                fast=extractor == "trafilatura_fast",
                favor_precision=extractor == "trafilatura_precision",
                favor_recall=extractor == "trafilatura_recall",
                include_comments=False,
                include_tables=include_tables,
                deduplicate=False,
                output_format="txt",
            )
    except Exception:  # noqa: BLE001 - a parser crash on one page must not stop the file
        return None
