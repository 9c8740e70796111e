"""Helpers shared by the readers: output collection, decompression, decoding, HTML extraction."""

from __future__ import annotations

import codecs
import gzip
import io
import json
import re
import threading
from typing import IO, Any

import polars as pl
import zstandard

from pipeline.ids import doc_id
from pipeline.schema import DOC_SCHEMA, REJECTED_SCHEMA
from pipeline.urls import normalize_url, registered_domain

from .config import IngestConfig, InputFile

STAGE = "ingest"

# Control characters that do not occur in real text (tab, LF, VT/FF, CR and ESC are allowed).
_CTRL_RE = re.compile(r"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f]")


def dumps_meta(meta: dict[str, Any]) -> str:
    """Stable JSON for the ``meta`` column (sorted keys; non-JSON values such as dates as strings)."""
    return json.dumps(meta, sort_keys=True, ensure_ascii=False, default=str)


class Sink:
    """Collects documents and rejects of one file as column lists; builds each DataFrame once."""

    def __init__(self, f: InputFile, cfg: IngestConfig, default_source: str) -> None:
        self.f = f
        self.cfg = cfg
        self.source = f.source or default_source
        self.docs: dict[str, list[Any]] = {k: [] for k in DOC_SCHEMA}
        self.rej: dict[str, list[Any]] = {k: [] for k in ("id", "source", "url", "path", "reason", "text")}

    def _where(self, locator: str | int | None) -> tuple[str, str]:
        path = self.f.display if locator is None else f"{self.f.display}#{locator}"
        return doc_id(self.f.display, locator), path

    def doc(
        self,
        locator: str | int | None,
        text: str,
        *,
        url: str | None = None,
        meta: dict[str, Any] | None = None,
        source: str | None = None,
        group_id: str | None = None,
    ) -> str | None:
        """Add a document (returns its id), or an ``empty`` reject when it is shorter than ``min_chars``.

        ``url`` is stored normalised (the original goes to ``meta.url_raw`` when it differs) with
        its registered domain; ``group_id`` defaults to the document's own id.
        """
        src = self.f.source or source or self.source
        if len(text.strip()) < self.cfg.min_chars or not text:
            self.reject(locator, "empty", url=url, source=src)
            return None
        did, path = self._where(locator)
        meta = dict(meta or {})
        norm = normalize_url(url) or url
        if url and norm != url:
            meta["url_raw"] = url
        d = self.docs
        d["id"].append(did)
        d["text"].append(text)
        d["source"].append(src)
        d["url"].append(norm)
        d["path"].append(path)
        d["meta"].append(dumps_meta(meta))
        d["group_id"].append(group_id or did)
        d["domain"].append(registered_domain(norm))
        return did

    def reject(
        self,
        locator: str | int | None,
        reason: str,
        *,
        url: str | None = None,
        text: str | None = None,
        source: str | None = None,
    ) -> None:
        did, path = self._where(locator)
        r = self.rej
        r["id"].append(did)
        r["source"].append(self.f.source or source or self.source)
        r["url"].append(normalize_url(url) or url)
        r["path"].append(path)
        r["reason"].append(reason)
        r["text"].append(text)

    def frames(self) -> tuple[pl.DataFrame, pl.DataFrame]:
        docs = pl.DataFrame(self.docs, schema=DOC_SCHEMA)
        rej = pl.DataFrame(self.rej, schema={k: REJECTED_SCHEMA[k] for k in self.rej})
        rej = rej.with_columns(pl.lit(STAGE).alias("stage"))
        rej = rej.select(
            [pl.col(k) if k in rej.columns else pl.lit(None, dtype=t).alias(k) for k, t in REJECTED_SCHEMA.items()]
        )
        return docs, rej


def file_reject(f: InputFile, cfg: IngestConfig, reason: str, default_source: str = "other"):
    """Frames holding a single file-level reject."""
    sink = Sink(f, cfg, default_source)
    sink.reject(None, reason)
    return sink.frames()


# --- decompression --------------------------------------------------------------------------


class _ZstdRaw(io.RawIOBase):
    """Streaming zstd reader that raises EOFError when input ends inside a frame.

    ``zstandard``'s own ``stream_reader`` silently stops at a truncated frame, which would hide
    data loss; this one treats it like ``gzip`` does.
    """

    def __init__(self, fh: IO[bytes]) -> None:
        self._fh = fh
        self._dctx = zstandard.ZstdDecompressor()
        self._dobj = self._dctx.decompressobj()
        self._pending = b""
        self._in_frame = False
        self._done = False

    def readable(self) -> bool:
        return True

    def _fill(self) -> None:
        while not self._pending and not self._done:
            chunk = self._fh.read(1 << 16)
            if not chunk:
                if self._in_frame:
                    raise EOFError("zstd stream ended inside a frame")
                self._done = True
                return
            while chunk:
                self._in_frame = True
                self._pending += self._dobj.decompress(chunk)
                if self._dobj.eof:
                    # Frame finished: anything after it starts a new frame.
                    chunk = self._dobj.unused_data
                    self._dobj = self._dctx.decompressobj()
                    self._in_frame = False
                else:
                    chunk = b""

    def readinto(self, b: Any) -> int:
        self._fill()
        n = min(len(b), len(self._pending))
        b[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def open_decompressed(fh: IO[bytes], name: str) -> IO[bytes]:
    """Wrap ``fh`` in a streaming decompressor chosen by the file name (.gz, .zst) or return it."""
    low = name.lower()
    if low.endswith(".gz"):
        return gzip.GzipFile(fileobj=fh, mode="rb")  # type: ignore[return-value]
    if low.endswith(".zst") or low.endswith(".zstd"):
        return io.BufferedReader(_ZstdRaw(fh), buffer_size=1 << 16)
    return fh


def read_capped(f: InputFile, cap_bytes: int) -> bytes:
    """Whole (decompressed) content of a small-document file; ValueError when over ``cap_bytes``."""
    with open(f.path, "rb") as fh:
        data = open_decompressed(fh, f.path.name).read(cap_bytes + 1)
    if len(data) > cap_bytes:
        raise ValueError(f"too large: more than {cap_bytes // (1 << 20)} MB decompressed")
    return data


def read_document_bytes(sink: Sink, f: InputFile, cfg: IngestConfig) -> bytes | None:
    """Bytes of a one-document file, or None after recording why it cannot be a document."""
    try:
        data = read_capped(f, cfg.max_record_mb << 20)
    except (OSError, EOFError, ValueError) as e:
        sink.reject(None, f"unreadable: {type(e).__name__}: {' '.join(str(e).split())[:200]}")
        return None
    if not data:
        sink.reject(None, "empty file")
        return None
    return data


# --- decoding -------------------------------------------------------------------------------

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
    """Decode HTML bytes: HTTP charset, else ``<meta>`` charset, else UTF-8, else detection.

    Returns (text, how) where ``how`` names the encoding and where it came from.
    """
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
    """Decode a plain-text file (UTF-8, else detected between latin-1/cp1252); None when binary."""
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


def normalize_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


# --- HTML -----------------------------------------------------------------------------------

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


def extract_main_text(html: str, cfg: IngestConfig, url: str | None = None) -> str | None:
    """Main text of a page with the configured extractor, or None when it finds none."""
    text = extract_with(cfg.extractor, html, url=url, include_tables=cfg.include_tables)
    if text is None or not text.strip():
        return None
    return text


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
