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
        n = -(-f.size // shard_bytes)
        bounds = [f.size * k // n for k in range(n + 1)]
        return [dataclasses.replace(f, part=(a, b), size=b - a) for a, b in zip(bounds, bounds[1:], strict=False)]
    if f.fmt == "parquet":
        return _parquet_parts(f, shard_bytes)
    return [f]


def _parquet_parts(f: InputFile, shard_bytes: int) -> list[InputFile]:
    """Runs of whole row groups of about ``shard_bytes`` (compressed) each; ``f`` itself when the footer
    cannot be read (the reader then says why) or there is one row group."""
    import pyarrow.parquet as pq

    try:
        with open_regular(f.path) as fh:  # never blocks on a FIFO swapped in since discovery
            meta = pq.ParquetFile(fh).metadata
            sizes = [meta.row_group(i).total_byte_size for i in range(meta.num_row_groups)]
    except Exception:  # noqa: BLE001 - unreadable or not parquet: one unit, whose reader records why
        return [f]
    if len(sizes) < 2:
        return [f]
    parts, first, acc = [], 0, 0
    for i, s in enumerate(sizes):
        acc += s
        if acc >= shard_bytes or i == len(sizes) - 1:
            parts.append((first, i + 1, acc))
            first, acc = i + 1, 0
    if len(parts) < 2:
        return [f]
    return [dataclasses.replace(f, part=(a, b), size=max(1, s)) for a, b, s in parts]
