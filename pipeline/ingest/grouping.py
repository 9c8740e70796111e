"""Cutting the input file list into ingest shards that stay the same when files are added.

A shard ends after a file with a probability set by that file alone (its estimated text size over
``shard_bytes``, at least ``2 / max_files``), decided by a hash of its name: boundaries are
content-defined, so adding or removing a file changes only the shard it falls in (and, rarely, the
next one), and a rerun of a grown corpus finds every other shard in the cache. Hard limits (twice
``shard_bytes``, ``max_files``) cut early; the next content-defined boundary puts the rest back in step.

A file larger than ``shard_bytes`` that can be read from the middle (uncompressed JSONL by byte
ranges aligned to lines; Parquet by row groups) is cut into parts, each its own unit of work, so one
big file is ingested in parallel. Ids do not change: a part numbers its lines (rows) from the start
of the file.
"""

from __future__ import annotations

import dataclasses
import os
from typing import BinaryIO

import xxhash

from ._common import open_regular
from .config import PROBLEM_FMTS, InputFile

# Rough text expansion of compressed inputs, so a shard of .gz files is not four times too big.
_EXPANSION = {".gz": 4, ".zst": 5, ".bz2": 5, ".xz": 6}
_HASH_SPAN = float(1 << 64)


def estimated_bytes(f: InputFile) -> int:
    """Text bytes ``f`` is expected to give (problem entries have size -1: they give one row)."""
    return max(f.size, 0) * _EXPANSION.get(f.path.suffix.lower(), 1)


def _ends_shard(f: InputFile, shard_bytes: int, max_files: int) -> bool:
    chance = max(estimated_bytes(f) / shard_bytes, 2 / max_files)
    name = f"{f.display}\0{f.part}".encode("utf-8", "surrogatepass")
    return xxhash.xxh3_64_intdigest(name) / _HASH_SPAN < chance


def group_files(
    files: list[InputFile], shard_bytes: int, max_files: int, max_file_bytes: int | None = None
) -> list[list[InputFile]]:
    """The sorted file list (big files cut into parts) as shards of about ``shard_bytes`` of text. A file
    over ``max_file_bytes`` is never cut: its reader rejects it whole, as one row."""
    shard_bytes = max(shard_bytes, 1)
    groups: list[list[InputFile]] = []
    current: list[InputFile] = []
    size = 0
    for f in (part for whole in files for part in split_file(whole, shard_bytes, max_file_bytes)):
        est = estimated_bytes(f)
        # a part of a big file is a shard of its own: one unit of the file's parallel read
        if current and (f.part is not None or size + est > 2 * shard_bytes or len(current) >= max_files):
            groups.append(current)
            current, size = [], 0
        current.append(f)
        size += est
        if f.part is not None or _ends_shard(f, shard_bytes, max_files):
            groups.append(current)
            current, size = [], 0
    if current:
        groups.append(current)
    return groups


def split_file(f: InputFile, shard_bytes: int, max_file_bytes: int | None = None) -> list[InputFile]:
    """``f`` as parts of about ``shard_bytes`` each when it is bigger and can be read from the middle.

    Each part carries a content hash of what it reads (``fingerprint``: its byte range for JSONL, the
    whole file for Parquet) and the file's size and modification time when cut, so a reader can tell
    that the file changed since and reject the part instead of reading a shifted range.
    """
    if f.fmt in PROBLEM_FMTS or f.size <= shard_bytes or f.part is not None:
        return [f]
    if max_file_bytes is not None and f.size > max_file_bytes:
        return [f]
    try:
        with open_regular(f.path) as fh:  # never blocks on a FIFO swapped in since discovery
            st = os.fstat(fh.fileno())
            stamp = (st.st_size, st.st_mtime_ns)
            if f.fmt == "jsonl" and f.display.lower().endswith((".jsonl", ".ndjson", ".json")):
                parts = _jsonl_parts(fh, shard_bytes)
            elif f.fmt == "parquet":
                parts = _parquet_parts(fh, shard_bytes)
            else:
                return [f]
    except Exception:  # noqa: BLE001 - vanished, unreadable or not parquet: one unit, whose reader says why
        return [f]
    if len(parts) < 2:
        return [f]
    return [
        dataclasses.replace(f, part=(a, b, before, *stamp), size=max(1, size), fingerprint=fp)
        for a, b, before, size, fp in parts
    ]


Part = tuple[int, int, int, int, str]  # (start, end, records before start, bytes, content hash)


def _jsonl_parts(fh: BinaryIO, shard_bytes: int) -> list[Part]:
    """Byte ranges of about ``shard_bytes`` that start at line starts, each with the number of lines
    before it and a hash of its bytes: one pass over the file, so a part reads no byte of another."""
    parts: list[Part] = []
    start = start_line = pos = lines = 0
    target = shard_bytes
    digest = xxhash.xxh3_128()
    while block := fh.read(1 << 22):
        i = 0
        while pos + len(block) > target:  # the first line start at or after `target` ends the part
            nl = block.find(b"\n", max(target - pos - 1, i))
            if nl < 0:
                break
            digest.update(block[i : nl + 1])
            boundary = pos + nl + 1
            parts.append((start, boundary, start_line, boundary - start, digest.hexdigest()))
            start, start_line = boundary, lines + block.count(b"\n", 0, nl + 1)
            target, i = boundary + shard_bytes, nl + 1
            digest = xxhash.xxh3_128()
        digest.update(block[i:])
        lines += block.count(b"\n")
        pos += len(block)
    if pos > start:
        parts.append((start, pos, start_line, pos - start, digest.hexdigest()))
    return parts


def _parquet_parts(fh: BinaryIO, shard_bytes: int) -> list[Part]:
    """Runs of whole row groups of about ``shard_bytes`` (uncompressed) each, with the rows before each
    run; row groups without rows join the run before them (a part always has rows to read)."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(fh).metadata
    groups = [(meta.row_group(i).total_byte_size, meta.row_group(i).num_rows) for i in range(meta.num_row_groups)]
    fh.seek(0)
    digest = xxhash.xxh3_128()
    while block := fh.read(1 << 22):
        digest.update(block)
    whole = digest.hexdigest()
    parts: list[Part] = []
    first = rows = rows_at_first = size = 0
    for i, (group_bytes, group_rows) in enumerate(groups):
        size += group_bytes
        rows += group_rows
        if size >= shard_bytes or i == len(groups) - 1:
            if rows == rows_at_first and parts:  # no rows: the previous run takes these groups
                a, _, before, s, fp = parts.pop()
                parts.append((a, i + 1, before, s + size, fp))
            else:
                parts.append((first, i + 1, rows_at_first, size, whole))
            first, rows_at_first, size = i + 1, rows, 0
    return parts
