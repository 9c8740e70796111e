"""Record readers: JSON Lines (plain, gzip, zstd; streamed) and parquet (row-group batches)."""

from __future__ import annotations

import codecs
import json
from typing import IO, Any

import numpy as np
import polars as pl

from pipeline.schema import SOURCES

from ._common import Sink, open_input
from ._decompress import mb, open_decompressed, skip_limit, too_large
from ._html import extract_page_text
from .config import IngestConfig, InputFile, safe_text

_TEXT_FIELDS = ("text", "content")


def _record_doc(sink: Sink, cfg: IngestConfig, locator: int, rec: dict[str, Any]) -> None:
    """Turn one decoded record into a document or a reject.

    The record's own ``id`` is kept in meta as ``orig_id``: our ``id`` stays the hash of
    (display path, locator), which is stable and unique whatever the producer put there.
    """
    field = next((k for k in _TEXT_FIELDS if rec.get(k) is not None), None)
    html_field = cfg.jsonl_html_field
    url = rec.get("url")
    url = (url.strip() or None) if isinstance(url, str) else None
    meta = {k: v for k, v in rec.items() if k not in ("id", "url", "source") and k != field}
    if "id" in rec:
        meta["orig_id"] = rec["id"]
    orig_source = rec.get("source")
    if orig_source is not None and orig_source not in SOURCES:
        meta["orig_source"] = orig_source
    source = orig_source if orig_source in SOURCES else None

    if field is None and html_field and isinstance(rec.get(html_field), str):
        # A crawl dump holding raw HTML: extract the main text like a WARC response.
        meta.pop(html_field, None)
        text, how = extract_page_text(rec[html_field], cfg, url=url)
        if text is None:
            sink.reject(locator, "no main text", url=url, source=source or "web")
            return
        meta["text_from"] = html_field
        if how == "fallback":
            meta["extraction"] = how
        sink.doc(locator, text, url=url, meta=meta, source=source or "web")
        return
    if field is None:
        sink.reject(locator, "missing text field", url=url, source=source)
        return
    text = rec[field]
    if not isinstance(text, str):
        sink.reject(locator, f"non-string {field}: {type(text).__name__}", url=url, source=source)
        return
    if field == "content" and ("language" in rec or "repo" in rec):
        source = source or "code"
    sink.doc(locator, text, url=url, meta=meta, source=source)


def read_jsonl(f: InputFile, cfg: IngestConfig) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One document per line (1-based line number as locator); bad lines become rejects.

    Lines are read with a bounded ``readline``: a line over ``max_record_mb`` is never held whole,
    only counted while the rest of it is skipped, and becomes a ``record too large`` reject.
    """
    sink = Sink(f, cfg, "other")
    cap = cfg.max_record_mb << 20
    lineno = 0
    with open_input(f) as fh:
        stream = open_decompressed(fh, f.path.name) if f.part is None else fh
        end = None
        if f.part is not None:  # an uncompressed file cut into line-aligned byte ranges: ours
            start, end, lineno = f.part[:3]
            fh.seek(start)
        try:
            while (end is None or fh.tell() < end) and (raw := stream.readline(cap + 1)):
                lineno += 1
                if sink.full:
                    sink.rest_not_read(lineno)
                    break
                if len(raw) > cap and not raw.endswith(b"\n"):
                    size, complete = _skip_line(stream, skip_limit(cfg))
                    sink.reject(lineno, too_large(len(raw) + size, cfg, complete))
                    if not complete:
                        sink.reject(lineno + 1, "unread: rest of file after a record too large to skip")
                        break
                    continue
                _jsonl_line(sink, cfg, lineno, raw)
        except Exception as e:  # noqa: BLE001 - truncated/corrupt compressed stream: keep what came before
            sink.reject(lineno + 1, f"truncated: {type(e).__name__}: {' '.join(str(e).split())[:200]}")
    if not sink.docs["id"] and not sink.rej["id"]:  # every file gives a row, even one of blank lines
        if f.part is not None:  # a byte range of blank lines (or inside one long line): named by its range
            sink.reject(f"bytes {f.part[0]}-{f.part[1]}", "no records: only blank lines")
        else:
            sink.reject(None, "no records: only blank lines" if lineno else "empty file")
    return sink.frames()


def _skip_line(stream: IO[bytes], limit: int) -> tuple[int, bool]:
    """Drop the rest of the current line in 1 MB pieces: (its size without the newline, True when
    the line ended before ``limit`` bytes)."""
    n = 0
    while n < limit:
        chunk = stream.readline(1 << 20)
        if not chunk:
            return n, True
        if chunk.endswith(b"\n"):
            return n + len(chunk) - 1, True
        n += len(chunk)
    return n, False


# JSON records nested deeper than this are rejected: ``json`` recurses per level, so such a record can
# fail (RecursionError) wherever it is parsed or written again, depending on how deep the stack is
# already; a fixed bound makes the outcome the same everywhere. Real records nest a few levels.
MAX_JSON_DEPTH = 256
_TOO_DEEP = f"invalid json: nested too deeply (over {MAX_JSON_DEPTH} levels)"


def _jsonl_line(sink: Sink, cfg: IngestConfig, lineno: int, raw: bytes) -> None:
    if raw.startswith(codecs.BOM_UTF8):
        # Windows editors start a file with one, and files joined with ``cat`` keep theirs mid-file;
        # json.loads refuses it, yet it is no part of the record.
        raw = raw[len(codecs.BOM_UTF8) :]
    if not raw.strip():
        return  # blank separator lines are not records
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError:
        sink.reject(lineno, "invalid utf-8", text=raw[:1000].decode("utf-8", "replace"))
        return
    try:
        rec = json.loads(line)
    except ValueError as e:
        sink.reject(lineno, f"invalid json: {e}", text=line[:1000])
        return
    except RecursionError:  # deeper than the interpreter's limit: this line only, the next ones are read
        sink.reject(lineno, _TOO_DEEP, text=line[:1000])
        return
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and json_depth(rec) > MAX_JSON_DEPTH:
        sink.reject(lineno, _TOO_DEEP, text=line[:1000])
        return
    if not isinstance(rec, dict):
        sink.reject(lineno, f"not a json object: {type(rec).__name__}", text=line[:1000])
        return
    _record_doc(sink, cfg, lineno, rec)


def json_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> int:
    """Nesting depth of a decoded JSON value (a scalar is 0, ``[]`` 1), counted up to ``limit + 1``.

    Iterative (an explicit stack): it runs on values too deep for recursion.
    """
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, dict | list):
            continue
        deepest = max(deepest, depth + 1)
        if deepest > limit:
            return deepest
        stack.extend((v, depth + 1) for v in (node.values() if isinstance(node, dict) else node))
    return deepest


def read_parquet(f: InputFile, cfg: IngestConfig) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One document per row (0-based row index as locator), streamed in pyarrow batches.

    Bounded memory: string columns are read dictionary-encoded, so a huge value shared by many rows
    (a few KB on disk) is held once, never expanded per row; each row's size is computed from the
    arrow buffers, rows over ``max_record_mb`` are rejected with their size before any Python
    string is made, and the rest is turned into Python objects in slices of bounded size. Row
    groups whose rows are large on average are read a few rows at a time.
    """
    import pyarrow.parquet as pq

    sink = Sink(f, cfg, "other")
    with open_input(f) as fh:
        try:
            pf = pq.ParquetFile(fh, read_dictionary=_string_columns(pq.read_schema(fh)))
        except Exception as e:  # noqa: BLE001 - not a parquet file / corrupt footer
            sink.reject(None, f"parquet: unreadable: {type(e).__name__}: {' '.join(str(e).split())[:200]}")
            return sink.frames()
        if pf.metadata.num_rows == 0:
            sink.reject(None, "empty file")
            return sink.frames()
        names = pf.schema_arrow.names
        if not any(c in names for c in (*_TEXT_FIELDS, cfg.jsonl_html_field)):
            # Every row is an input record: each gets its reject, so the accounting holds row by row.
            first, last, start = f.part[:3] if f.part else (0, pf.metadata.num_row_groups, 0)
            stop = start + sum(
                pf.metadata.row_group(rg).num_rows for rg in range(first, min(last, pf.metadata.num_row_groups))
            )
            for row in range(start, min(stop, pf.metadata.num_rows)):
                sink.reject(row, "parquet: no text column")
            return sink.frames()
        first, last, row = (
            f.part[:3] if f.part else (0, pf.metadata.num_row_groups, 0)
        )  # rows numbered from the file's start
        try:
            for rg in range(first, min(last, pf.metadata.num_row_groups)):
                meta = pf.metadata.row_group(rg)
                bomb = _bomb_column(meta, cfg)
                if bomb or sink.full:
                    # Rows are known from the footer: each gets its reject without being read.
                    reason = f"row group not read: {bomb}" if bomb else f"not read: {sink.full_reason()}"
                    for i in range(meta.num_rows):
                        sink.reject(row + i, reason)
                    row += meta.num_rows
                    continue
                for batch in pf.iter_batches(batch_size=_batch_rows(meta, cfg), row_groups=[rg]):
                    _parquet_batch(sink, cfg, batch, row)
                    row += batch.num_rows
        except Exception as e:  # noqa: BLE001 - a corrupt row group: keep the rows before it
            sink.reject(row, f"truncated: {type(e).__name__}: {' '.join(str(e).split())[:200]}")
    return sink.frames()


def _is_text_type(t: Any) -> bool:
    import pyarrow as pa

    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t)


def _string_columns(schema: Any) -> list[str]:
    """Top-level string/binary columns: the ones read dictionary-encoded."""
    return [fld.name for fld in schema if _is_text_type(fld.type)]


# Arrow data turned into Python objects at once, at most (a batch is sliced to stay under it).
_SLICE_BYTES = 64 << 20


# A column chunk is a decompression bomb past both: this many bytes once decompressed, at this ratio.
_BOMB_MIN_BYTES = 256 << 20
_BOMB_RATIO = 64


def _bomb_column(meta: Any, cfg: IngestConfig) -> str | None:
    """Why a row group must not be read at all: a column chunk that decompresses to more than
    ``max(256 MB, 4 x max_record_mb)`` at a ratio above 64. pyarrow holds a chunk's largest value
    several times over while decoding, before any cell can be measured; real text compresses
    less than ~10x (repeated values are dictionary-encoded before compression)."""
    limit = max(_BOMB_MIN_BYTES, 4 * (cfg.max_record_mb << 20))
    for j in range(meta.num_columns):
        col = meta.column(j)
        size, packed = col.total_uncompressed_size, max(col.total_compressed_size, 1)
        if size > limit and size > _BOMB_RATIO * packed:
            return (
                f"column {safe_text(col.path_in_schema)!r} decompresses to {mb(size)} MB from {mb(packed)} MB "
                f"(over {mb(limit)} MB at a ratio over {_BOMB_RATIO}: a decompression bomb)"
            )
    return None


def _batch_rows(meta: Any, cfg: IngestConfig) -> int:
    """Rows per batch in a row group: fewer when its rows are large on average (uncompressed size
    from the footer), so a batch's arrow data stays near ``_SLICE_BYTES``."""
    per_row = meta.total_byte_size // max(meta.num_rows, 1)
    return max(1, min(cfg.parquet_batch_rows, _SLICE_BYTES // max(per_row, 1)))


def _row_bytes(batch: Any) -> np.ndarray:
    """Bytes of string/binary data per row of an arrow batch, from offsets only (no copy of the data;
    a dictionary column by its values' lengths). Nested columns are not counted."""
    import pyarrow as pa
    import pyarrow.compute as pc

    total = np.zeros(batch.num_rows, dtype=np.int64)
    for col in batch.columns:
        if pa.types.is_dictionary(col.type) and _is_text_type(col.type.value_type):
            lengths = pc.take(pc.binary_length(col.dictionary).cast(pa.int64()), col.indices)
        elif _is_text_type(col.type):
            lengths = pc.binary_length(col).cast(pa.int64())
        else:
            continue
        total += pc.fill_null(lengths, 0).to_numpy(zero_copy_only=False)
    return total


def _parquet_batch(sink: Sink, cfg: IngestConfig, batch: Any, first_row: int) -> None:
    """Documents/rejects of one arrow batch whose first row is ``first_row`` of the file."""
    cap = cfg.max_record_mb << 20
    sizes = _row_bytes(batch)
    start = 0
    while start < batch.num_rows:
        if sink.full:
            sink.reject(first_row + start, f"not read: {sink.full_reason()}")
            start += 1
            continue
        if sizes[start] > cap:
            sink.reject(first_row + start, too_large(int(sizes[start]), cfg))
            start += 1
            continue
        # The longest run of acceptable rows from ``start`` whose data fits in one slice.
        end, total = start, 0
        while end < batch.num_rows and sizes[end] <= cap and (end == start or total + sizes[end] <= _SLICE_BYTES):
            total += int(sizes[end])
            end += 1
        for i, rec in enumerate(batch.slice(start, end - start).to_pylist()):
            _record_doc(sink, cfg, first_row + start + i, rec)
        start = end
