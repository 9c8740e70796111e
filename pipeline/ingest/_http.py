"""Streaming decoders for HTTP payloads in WARC records, with bounded memory.

warcio's own readers hold a whole transfer chunk and inflate it in one call, so one chunk of a
gzip bomb could expand to gigabytes. These decode piece by piece: each ``read`` returns at most
what was asked for, whatever the compression ratio.
"""

from __future__ import annotations

import io
import zlib
from typing import Any

_READ = 1 << 16


class Dechunk(io.RawIOBase):
    """HTTP ``Transfer-Encoding: chunked`` decoded as a stream.

    Like warcio, a size line that does not parse means the body was not chunked after all: the
    rest is passed through as it is, that line included. A body cut inside a chunk just ends.
    """

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self._left = 0  # bytes still to read in the current chunk
        self._pending = b""
        self._plain = False
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self._next(len(b))
        b[: len(data)] = data
        return len(data)

    def _next(self, n: int) -> bytes:
        while True:
            if self._pending:
                data, self._pending = self._pending[:n], self._pending[n:]
                return data
            if self._plain:
                return self._raw.read(n)
            if self._done:
                return b""
            if self._left:
                data = self._raw.read(min(n, self._left))
                self._left = self._left - len(data) if data else 0
                self._done = not data
                if data and not self._left:
                    self._raw.read(2)  # the CRLF after a chunk
                return data
            self._start_chunk()

    def _start_chunk(self) -> None:
        line = self._raw.readline(64)
        if not line:
            self._done = True
            return
        try:
            size = int(line.strip().split(b";")[0], 16)
        except ValueError:
            self._plain, self._pending = True, line
            return
        if size == 0:
            self._done = True
        self._left = size


class Inflate(io.RawIOBase):
    """``Content-Encoding`` gzip / deflate / br decoded with a bound on each call's output.

    As in warcio, data that fails to decode from its first bytes is taken as not compressed and
    passed through (``deflate`` first tries raw deflate); a failure later ends the stream, keeping
    what was decoded.
    """

    def __init__(self, raw: Any, encoding: str) -> None:
        self._raw = raw
        self._encoding = encoding
        self._dec: Any = _decompressor(encoding)
        self._tail = b""  # input not consumed yet (zlib's unconsumed_tail, or replayed input)
        self._head: bytes | None = b""  # all input read before the first output, None after it
        self._plain = False
        self._done = False
        self._out = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        # brotli may return a little more than asked for: the rest waits in ``_out``.
        data = self._out or self._next(len(b))
        data, self._out = data[: len(b)], data[len(b) :]
        b[: len(data)] = data
        return len(data)

    def _next(self, n: int) -> bytes:
        while not self._done:
            if self._plain:
                data, self._tail = self._tail[:n], self._tail[n:]
                return data or self._raw.read(n)
            busy = self._encoding == "br" and not self._dec.can_accept_more_data()
            data = b"" if busy else self._tail or self._raw.read(_READ)
            if self._head is not None and data and not self._tail:
                self._head += data
            try:
                out = self._decode(data, n, end=not data and not busy)
            except Exception:  # noqa: BLE001 - zlib.error, brotli.error: see the class docstring
                if self._head is None:
                    break
                self._retry()
                continue
            if out:
                self._head = None
                return out
            self._done = not data and not busy
        self._done = True
        return b""

    def _decode(self, data: bytes, n: int, end: bool) -> bytes:
        if self._encoding == "br":
            return self._dec.process(data, output_buffer_limit=n)
        if end:
            return self._dec.flush()  # the little output zlib may still hold
        out = self._dec.decompress(data, n)
        self._tail = self._dec.unconsumed_tail
        if self._dec.eof:
            if self._encoding in ("gzip", "x-gzip"):
                # Another gzip member may follow (RFC 1952); bytes that are not one end the stream.
                self._tail, self._dec = self._dec.unused_data, _decompressor(self._encoding)
            elif not out:
                self._done = True  # anything after a deflate stream is ignored, as in warcio
        return out

    def _retry(self) -> None:
        """After a decoding error before any output: raw deflate once, else pass-through."""
        self._tail = self._head or b""
        if self._encoding == "deflate":
            self._encoding, self._dec = "deflate_raw", _decompressor("deflate_raw")
        else:
            self._plain, self._head = True, None


def _decompressor(encoding: str) -> Any:
    if encoding == "br":
        import brotli

        return brotli.Decompressor()
    wbits = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
    return zlib.decompressobj(wbits.get(encoding, -zlib.MAX_WBITS))


def supported_encoding(name: str | None) -> str | None:
    """The ``Content-Encoding`` this module decodes, or None (body left as it is, as warcio does)."""
    enc = (name or "").strip().lower()
    if enc == "br":
        try:
            import brotli  # noqa: F401
        except ImportError:
            return None
        return enc
    return enc if enc in ("gzip", "x-gzip", "deflate") else None


def payload_stream(raw: Any, transfer_encoding: str | None, content_encoding: str | None) -> io.BufferedReader:
    """The decoded body of an HTTP message read from ``raw`` (the record's payload after headers)."""
    stream: Any = raw
    if (transfer_encoding or "").strip().lower() == "chunked":
        stream = io.BufferedReader(Dechunk(stream), buffer_size=_READ)
    enc = supported_encoding(content_encoding)
    if enc:
        stream = Inflate(stream, enc)
    return io.BufferedReader(stream if isinstance(stream, io.RawIOBase) else _Raw(stream), buffer_size=_READ)


class _Raw(io.RawIOBase):
    """A RawIOBase face for any object with ``read(n)`` (warcio's LimitReader)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self._stream.read(len(b))
        b[: len(data)] = data
        return len(data)
