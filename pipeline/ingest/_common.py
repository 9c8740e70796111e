"""Helpers shared by the readers: output collection, decompression, decoding, HTML extraction."""

from __future__ import annotations

import codecs
import gzip
import io
import json
import os
import re
import stat
import threading
import unicodedata
import zlib
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
        self._text_left = cfg.max_file_text_mb << 20  # characters still allowed (max_file_text_mb)
        self.full = False  # set once a document did not fit in ``max_file_text_mb``

    def full_reason(self) -> str:
        return f"file text over max_file_text_mb={self.cfg.max_file_text_mb}"

    def rest_not_read(self, locator: str | int | None) -> None:
        """One reject standing for the records after ``max_file_text_mb`` was reached: they are not
        read, so a decompression bomb costs neither memory nor (much) time."""
        self.reject(locator, f"not read: {self.full_reason()}; rest of file skipped")

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
        if self.full or len(text) > self._text_left:
            self.full = True  # readers stop here: see ``rest_not_read``
            self.reject(locator, self.full_reason(), url=url, source=src)
            return None
        meta = dict(meta or {})
        norm = normalize_url(url) or url
        if url and norm != url:
            meta["url_raw"] = url
        try:
            meta_json = dumps_meta(meta)
        except RecursionError:  # a value nested past the recursion limit: this record only, not the file
            self.reject(locator, "meta nested too deeply", url=url, source=src)
            return None
        self._text_left -= len(text)
        did, path = self._where(locator)
        d = self.docs
        d["id"].append(did)
        d["text"].append(text)
        d["source"].append(src)
        d["url"].append(norm)
        d["path"].append(path)
        d["meta"].append(meta_json)
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


# --- opening files, size limits ----------------------------------------------------------


class NotRegularFileError(OSError):
    """The path is a FIFO, socket, device or folder: never read from it (a FIFO would block)."""


def file_kind(mode: int) -> str:
    """Readable name of a file type (``stat.S_IFMT`` of ``mode``)."""
    for test, name in (
        (stat.S_ISREG, "regular file"), (stat.S_ISDIR, "folder"), (stat.S_ISFIFO, "fifo"),
        (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
        (stat.S_ISLNK, "symlink"),
    ):  # fmt: skip
        if test(mode):
            return name
    return "special file"


def open_input(f: InputFile) -> IO[bytes]:
    """Open an input file for reading, refusing anything but a regular file (see ``open_regular``)."""
    return open_regular(f.path)


def open_regular(path: str | os.PathLike[str]) -> IO[bytes]:
    """Open a regular file for reading; NotRegularFileError for anything else.

    Opened non-blocking and checked with ``fstat`` on the open descriptor, so a path swapped for a
    FIFO after it was listed can neither block the open nor be read.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFileError(f"not a regular file: {file_kind(mode)}")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def os_reason(e: OSError) -> str:
    """``"PermissionError: Permission denied"``: the error without the (possibly odd) file name."""
    if isinstance(e, NotRegularFileError):
        return str(e)
    return f"{type(e).__name__}: {e.strerror or e}"


def mb(n: int) -> str:
    """Size in MB for reject reasons: one decimal (``"110.0"``)."""
    return f"{n / (1 << 20):.1f}"


def too_large(size: int, cfg: IngestConfig, complete: bool = True) -> str:
    """Reject reason of a record over ``max_record_mb``; ``complete=False`` when counting stopped early."""
    what = mb(size) if complete else f"over {mb(size)}"
    return f"record too large: {what} MB > max_record_mb={cfg.max_record_mb}"


def skip_limit(cfg: IngestConfig) -> int:
    """Bytes of an oversized record counted (decompressed, then dropped) before giving up on it.

    Counting gives the real size; the limit bounds the time a decompression bomb can cost
    (a gzip member expands at most ~1000x, so a 512 MB file could otherwise mean ~500 GB to read).
    """
    return max(1 << 30, 64 * (cfg.max_record_mb << 20))


def skip_rest(stream: IO[bytes], limit: int) -> tuple[int, bool]:
    """Read and drop ``stream`` to its end in 1 MB pieces: (bytes dropped, True when the end came
    before ``limit``)."""
    n = 0
    while n < limit:
        chunk = stream.read(min(1 << 20, limit - n))
        if not chunk:
            return n, True
        n += len(chunk)
    return n, not stream.read(1)


# --- decompression --------------------------------------------------------------------------

_ZSTD_MAGIC = 0xFD2FB528
_BLOCK_MAX = 1 << 17  # zstd's largest block (128 KB)


def zstd_problem(fh: IO[bytes]) -> str | None:
    """Why a seekable zstd file is not a whole sequence of frames, or None when it is.

    Walks the frame and block headers without decompressing (``zstandard``'s bounded
    ``stream_reader`` silently stops at a frame cut short, which would hide data loss).
    """
    start = fh.tell()
    try:
        size = fh.seek(0, io.SEEK_END)
        pos = start
        while pos < size:
            pos = _zstd_frame_end(fh, pos)
            if pos > size:
                return "zstd stream ended inside a frame"
        return None
    except _ZstdFormat as e:
        return str(e)
    finally:
        fh.seek(start)


class _ZstdFormat(Exception):
    pass


def _read_at(fh: IO[bytes], pos: int, n: int) -> bytes:
    fh.seek(pos)
    data = fh.read(n)
    if len(data) < n:
        raise _ZstdFormat("zstd stream ended inside a frame")
    return data


def _zstd_frame_end(fh: IO[bytes], pos: int) -> int:
    """Offset just after the frame (or skippable frame) starting at ``pos``."""
    magic = int.from_bytes(_read_at(fh, pos, 4), "little")
    if magic & 0xFFFFFFF0 == 0x184D2A50:  # skippable frame: 4-byte length, then user data
        return pos + 8 + int.from_bytes(_read_at(fh, pos + 4, 4), "little")
    if magic != _ZSTD_MAGIC:
        raise _ZstdFormat(f"not a zstd frame at byte {pos}")
    desc = _read_at(fh, pos + 4, 1)[0]
    fcs_flag, single, checksum, dict_flag = desc >> 6, (desc >> 5) & 1, (desc >> 2) & 1, desc & 3
    fcs_size = (1 if single else 0, 2, 4, 8)[fcs_flag]
    pos += 5 + (0 if single else 1) + (0, 1, 2, 4)[dict_flag] + fcs_size
    while True:
        head = int.from_bytes(_read_at(fh, pos, 3), "little")
        last, btype, bsize = head & 1, (head >> 1) & 3, head >> 3
        if btype == 3 or bsize > _BLOCK_MAX:
            raise _ZstdFormat(f"corrupt zstd block header at byte {pos}")
        pos += 3 + (1 if btype == 1 else bsize)  # an RLE block stores its one byte
        if last:
            return pos + (4 if checksum else 0)


class _ZstdRaw(io.RawIOBase):
    """Bounded streaming zstd reader (any number of frames) that raises EOFError at its end when
    the file was cut inside a frame, as ``gzip`` does; memory stays bounded on a zstd bomb."""

    def __init__(self, fh: IO[bytes]) -> None:
        self._problem = zstd_problem(fh) if fh.seekable() else None
        self._reader = zstandard.ZstdDecompressor().stream_reader(fh, read_across_frames=True, closefd=False)

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self._reader.read(len(b))
        if not data and self._problem:
            raise EOFError(self._problem)
        b[: len(data)] = data
        return len(data)


def open_decompressed(fh: IO[bytes], name: str) -> IO[bytes]:
    """Wrap ``fh`` in a streaming decompressor chosen by the file name (.gz, .zst) or return it.

    Both decompressors bound their output per read, so a bomb costs time, never memory.
    """
    low = name.lower()
    if low.endswith(".gz"):
        return gzip.GzipFile(fileobj=fh, mode="rb")  # type: ignore[return-value]
    if low.endswith(".zst") or low.endswith(".zstd"):
        return io.BufferedReader(_ZstdRaw(fh), buffer_size=1 << 16)
    return fh


class RecordTooLarge(ValueError):
    """A one-document file over ``max_record_mb`` once decompressed; ``str()`` is the reject reason."""


def read_capped(f: InputFile, cfg: IngestConfig) -> bytes:
    """Whole (decompressed) content of a one-document file; RecordTooLarge (with the real size,
    counted while skipping the rest) when over ``max_record_mb``."""
    cap = cfg.max_record_mb << 20
    with open_input(f) as fh:
        stream = open_decompressed(fh, f.path.name)
        data = stream.read(cap + 1)
        if len(data) <= cap:
            return data
        rest, complete = skip_rest(stream, skip_limit(cfg))
    raise RecordTooLarge(too_large(len(data) + rest, cfg, complete))


def read_document_bytes(sink: Sink, f: InputFile, cfg: IngestConfig) -> bytes | None:
    """Bytes of a one-document file, or None after recording why it cannot be a document."""
    try:
        data = read_capped(f, cfg)
    except RecordTooLarge as e:
        sink.reject(None, str(e))
        return None
    except OSError as e:
        sink.reject(None, f"unreadable: {os_reason(e)}")
        return None
    except (EOFError, ValueError, zlib.error) as e:
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
    text, _ = extract_page_text(html, cfg, url=url)
    return text


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
