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


def group_files(files: list[InputFile], shard_bytes: int, max_files: int) -> list[list[InputFile]]:
    """The sorted file list (big files cut into parts) as shards of about ``shard_bytes`` of text."""
    groups: list[list[InputFile]] = []
    current: list[InputFile] = []
    size = 0
    for f in (part for whole in files for part in split_file(whole, shard_bytes)):
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


def split_file(f: InputFile, shard_bytes: int) -> list[InputFile]:
    """``f`` as parts of about ``shard_bytes`` each when it is bigger and can be read from the middle."""
    if f.fmt in PROBLEM_FMTS or f.size <= shard_bytes or f.part is not None:
        return [f]
    name = f.display.lower()
    if f.fmt == "jsonl" and name.endswith((".jsonl", ".ndjson", ".json")):
        return _jsonl_parts(f, shard_bytes)
    if f.fmt == "parquet":
        return _parquet_parts(f, shard_bytes)
    return [f]


def _jsonl_parts(f: InputFile, shard_bytes: int) -> list[InputFile]:
    """Byte ranges of about ``shard_bytes`` that start at line starts, each with the number of lines
    before it: one pass over the file counting newlines, so a part reads no byte of another."""
    parts: list[tuple[int, int, int]] = []  # (start, end, lines before start)
    start = start_line = pos = lines = 0
    target = shard_bytes
    try:
        with open_regular(f.path) as fh:  # never blocks on a FIFO swapped in since discovery
            while block := fh.read(1 << 22):
                i = 0
                while pos + len(block) > target:  # the first line start at or after `target` ends the part
                    nl = block.find(b"\n", max(target - pos - 1, i))
                    if nl < 0:
                        break
                    boundary = pos + nl + 1
                    parts.append((start, boundary, start_line))
                    start, start_line = boundary, lines + block.count(b"\n", 0, nl + 1)
                    target, i = boundary + shard_bytes, nl + 1
                lines += block.count(b"\n")
                pos += len(block)
    except OSError:  # vanished or unreadable: one unit, whose reader records why
        return [f]
    if pos > start:
        parts.append((start, pos, start_line))
    if len(parts) < 2:
        return [f]
    return [dataclasses.replace(f, part=(a, b, first), size=b - a) for a, b, first in parts]


def _parquet_parts(f: InputFile, shard_bytes: int) -> list[InputFile]:
    """Runs of whole row groups of about ``shard_bytes`` (uncompressed) each, with the rows before each
    run; ``f`` itself when the footer cannot be read (its reader then says why) or it gives one run."""
    import pyarrow.parquet as pq

    try:
        with open_regular(f.path) as fh:  # never blocks on a FIFO swapped in since discovery
            meta = pq.ParquetFile(fh).metadata
            groups = [
                (meta.row_group(i).total_byte_size, meta.row_group(i).num_rows) for i in range(meta.num_row_groups)
            ]
    except Exception:  # noqa: BLE001 - unreadable or not parquet: one unit, whose reader records why
        return [f]
    parts: list[tuple[int, int, int, int]] = []  # (first group, end group, rows before, bytes)
    first = rows = rows_at_first = size = 0
    for i, (group_bytes, group_rows) in enumerate(groups):
        size += group_bytes
        rows += group_rows
        if size >= shard_bytes or i == len(groups) - 1:
            parts.append((first, i + 1, rows_at_first, size))
            first, rows_at_first, size = i + 1, rows, 0
    if len(parts) < 2:
        return [f]
    return [dataclasses.replace(f, part=(a, b, before), size=max(1, s)) for a, b, before, s in parts]
