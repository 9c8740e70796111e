"""Reading input bytes with bounded memory: streaming decompression (gzip, zstd with truncation detection),
capped reads of one-document files, and the reject reasons of records over ``max_record_mb``."""

from __future__ import annotations

import gzip
import io
import zlib
from typing import IO, Any

import zstandard

from ._common import Sink, open_input, os_reason
from .config import IngestConfig, InputFile


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
