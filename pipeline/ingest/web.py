"""Web readers: WARC / ARC / WET archives (streamed with warcio) and stand-alone HTML pages."""

from __future__ import annotations

import gzip
import zlib
from typing import Any

import polars as pl
from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed

from ._common import Sink, open_input
from ._decode import charset_from_content_type, decode_html
from ._decompress import read_document_bytes, skip_limit, skip_rest, too_large
from ._html import extract_page_text, html_head_meta, html_title, html_url
from ._http import payload_stream
from .config import IngestConfig, InputFile

# Record types that carry no document: skipped without a row (they are not content).
_SKIP_TYPES = {"revisit", "request", "metadata", "warcinfo", "continuation"}
_HTML_TYPES = {"text/html", "application/xhtml+xml", "application/xml+xhtml"}
_TEXT_TYPES = {"text/plain"}
# Bytes warcio may read line by line between two records' bodies (WARC/ARC and HTTP headers, blank
# lines): real headers are a few KB; warcio's ``readline`` has no bound of its own.
_HEADER_LIMIT = 8 << 20


def _mime(ct: str | None) -> str:
    return (ct or "").split(";", 1)[0].strip().lower()


def _looks_html(data: bytes) -> bool:
    head = data[:1024].lstrip().lower()
    return head.startswith(b"<!doctype html") or head.startswith(b"<html") or b"<html" in head


def _drain(stream: Any) -> None:
    while stream.read(1 << 16):
        pass


def read_warc(f: InputFile, cfg: IngestConfig) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Documents from a WARC/ARC/WET file, one per response/resource/conversion record.

    Streams record by record. A break in the file (truncated gzip, truncated record, broken
    header) keeps every record before it and adds one ``truncated`` reject at its offset.
    Locators are the records' byte offsets in the file; for the rare archive gzipped as one
    single member (not per record) they are offsets in the decompressed stream.
    """
    head = _sniff(f)
    if head and not head.lstrip(b"\r\n").startswith((b"WARC/", b"filedesc:", b"http")):
        # warcio would read free text as (lenient) ARC headers; refuse what is plainly not an archive.
        sink = Sink(f, cfg, "web")
        sink.reject(None, f"not a readable archive: starts with {head[:20]!r}")
        return sink.frames()
    sink = _iter_archive(f, cfg, whole_gzip=False)
    if sink is None:
        sink = _iter_archive(f, cfg, whole_gzip=True)
    assert sink is not None
    return sink.frames()


def _sniff(f: InputFile) -> bytes | None:
    """First bytes of the (decompressed) archive; None when they cannot be read (left to warcio)."""
    try:
        with open_input(f) as fh:
            raw = fh.read(4096)
        if raw[:2] == b"\x1f\x8b":
            return zlib.decompressobj(wbits=31).decompress(raw, 64)
        return raw[:64]
    except (OSError, zlib.error):
        return None


def _iter_archive(f: InputFile, cfg: IngestConfig, whole_gzip: bool) -> Sink | None:
    """Read every record into a new Sink; None when the file is one gzip member (retry whole)."""
    sink = Sink(f, cfg, "web")
    n_records = 0
    with open_input(f) as raw:
        fh: Any = gzip.GzipFile(fileobj=raw, mode="rb") if whole_gzip else raw
        it = ArchiveIterator(fh, arc2warc=True)
        guard = _HeaderGuard(it.reader)
        offset = 0
        try:
            while (rec := guard.next_record(it)) is not None:
                offset = it.offset  # start of this record (get_record_offset() would consume it)
                if sink.full:
                    sink.rest_not_read(offset)
                    break
                n_records += 1
                _read_record(rec, offset, sink, cfg)
        except _Truncated as e:
            sink.reject(offset, f"truncated: {e}")
        except _HeadersTooLarge as e:
            sink.reject(max(it.offset, offset), f"unreadable: {e}; rest of file not read")
        except ArchiveLoadFailed as e:
            if not whole_gzip and "non-chunked gzip" in str(e):
                return None
            what = "truncated" if n_records else "not a readable archive"
            sink.reject(max(it.offset, offset), f"{what}: {' '.join(str(e).split())[:200]}")
        except Exception as e:  # noqa: BLE001 - any decoding error means the rest is unreadable
            # The break is where the iterator stopped: the next record's start (or this one's).
            at = max(it.offset, offset)
            sink.reject(at, f"truncated: {type(e).__name__}: {' '.join(str(e).split())[:200]}")
    if not sink.docs["id"] and not sink.rej["id"]:  # every file gives a row
        sink.reject(None, "no records: no response, resource or conversion record" if n_records else "empty file")
    return sink


class _Truncated(Exception):
    pass


class _HeadersTooLarge(Exception):
    pass


class _HeaderGuard:
    """Bounds what warcio reads with ``readline`` while it looks for the next record.

    warcio parses headers with unbounded ``readline`` calls on its reader: a "header line" of a
    gigabyte (or a gzip bomb of blank lines) would be held whole. The guard replaces that reader's
    ``readline`` and counts; it is armed only while warcio finds and parses the next record (our
    own body reads are bounded separately).
    """

    def __init__(self, reader: Any) -> None:
        self._readline = reader.readline
        reader.readline = self.readline
        self._used = 0
        self._armed = False

    def readline(self, length: int | None = None) -> bytes:
        if not self._armed:
            return self._readline(length)
        room = _HEADER_LIMIT - self._used
        line = self._readline(room + 1 if length is None or length > room + 1 else length)
        self._used += len(line)
        if self._used > _HEADER_LIMIT:
            raise _HeadersTooLarge(f"record headers over {_HEADER_LIMIT >> 20} MB")
        return line

    def next_record(self, it: Any) -> Any:
        """The iterator's next record, or None at its end."""
        self._used, self._armed = 0, True
        try:
            return next(it, None)
        finally:
            self._armed = False


def _read_record(rec: Any, offset: int, sink: Sink, cfg: IngestConfig) -> None:
    rtype = rec.rec_type
    h = rec.rec_headers
    url = h.get_header("WARC-Target-URI")
    if url:
        url = url.strip().strip("<>").strip() or None
    if rtype in _SKIP_TYPES or rtype not in ("response", "resource", "conversion"):
        _drain(rec.raw_stream)
        _check_complete(rec)
        return
    http_ct = None
    status = None
    if rtype == "response" and rec.http_headers is not None:
        http_ct = rec.http_headers.get_header("Content-Type")
        try:
            status = int(rec.http_headers.get_statuscode() or 0)
        except ValueError:
            status = None
    ct = http_ct or h.get_header("Content-Type")
    mime = _mime(ct)
    meta: dict[str, Any] = {
        "warc_type": rtype,
        "warc_date": h.get_header("WARC-Date"),
        "content_type": ct,
        "http_charset": charset_from_content_type(ct),
    }
    if status is not None:
        meta["http_status"] = status

    data, too_big = _payload(rec, cfg)
    if too_big is not None:
        sink.reject(offset, too_big, url=url)
        return
    if cfg.reject_http_errors and status and not 200 <= status < 300:
        sink.reject(offset, f"http status {status}", url=url)
        return

    if rtype == "conversion":
        # WET: already extracted text, always UTF-8 by the Common Crawl convention.
        sink.doc(offset, data.decode("utf-8", errors="replace"), url=url, meta=meta)
        return
    if not mime and _looks_html(data):
        mime = "text/html"
    if mime in _TEXT_TYPES:
        text, how = decode_html(data, meta["http_charset"]) if data else ("", "empty")
        meta["encoding"] = how
        sink.doc(offset, text, url=url, meta=meta)
        return
    if mime not in _HTML_TYPES:
        sink.reject(offset, f"unsupported content-type: {mime or '(none)'}", url=url)
        return
    html, how = decode_html(data, meta["http_charset"])
    meta["encoding"] = how
    meta["title"] = html_title(html)
    meta.update(html_head_meta(html))
    text, extraction = extract_page_text(html, cfg, url=url)
    if text is None:
        sink.reject(offset, "no main text", url=url)
        return
    if extraction == "fallback":
        meta["extraction"] = extraction
    sink.doc(offset, text, url=url, meta=meta)


def _payload(rec: Any, cfg: IngestConfig) -> tuple[bytes, str | None]:
    """(decoded payload, None), or (b"", reject reason) when it is over ``max_record_mb``.

    At most ``max_record_mb`` + 1 byte is held: an oversized payload is only counted (decoded) as
    it is skipped, up to ``skip_limit``. The record is then read to its end, so a record cut short
    raises ``_Truncated`` first.
    """
    cap = cfg.max_record_mb << 20
    http = rec.http_headers
    if http is None:
        stream: Any = rec.raw_stream
    else:
        stream = payload_stream(
            rec.raw_stream, http.get_header("Transfer-Encoding"), http.get_header("Content-Encoding")
        )
    data = stream.read(cap + 1)
    reason = None
    if len(data) > cap:
        rest, complete = skip_rest(stream, skip_limit(cfg))
        reason, data = too_large(len(data) + rest, cfg, complete), b""
    _drain(rec.raw_stream)
    _check_complete(rec)  # a cut record is the truncation point, not a document
    return data, reason


def _check_complete(rec: Any) -> None:
    """Raise when the record's block ended before its Content-Length (file cut inside it)."""
    left = getattr(rec.raw_stream, "limit", 0)
    if left and left > 0:
        raise _Truncated(f"record cut short, {left} of {rec.length} bytes missing")


def read_html(f: InputFile, cfg: IngestConfig) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One document from a stand-alone .html/.htm(.gz) page."""
    sink = Sink(f, cfg, "web")
    data = read_document_bytes(sink, f, cfg)
    if data is None:
        return sink.frames()
    html, how = decode_html(data)
    url = html_url(html)
    text, extraction = extract_page_text(html, cfg, url=url)
    if text is None:
        sink.reject(None, "no main text", url=url)
        return sink.frames()
    meta = {"title": html_title(html), "encoding": how, **html_head_meta(html)}
    if extraction == "fallback":
        meta["extraction"] = extraction
    sink.doc(None, text, url=url, meta=meta)
    return sink.frames()
