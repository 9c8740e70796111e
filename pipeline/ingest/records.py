"""Record readers: JSON Lines (plain, gzip, zstd; streamed) and parquet (row-group batches)."""

from __future__ import annotations

import json
from typing import Any

import polars as pl

from pipeline.schema import SOURCES

from ._common import Sink, extract_main_text, open_decompressed
from .config import IngestConfig, InputFile

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
        text = extract_main_text(rec[html_field], cfg, url=url)
        if text is None:
            sink.reject(locator, "no main text", url=url, source=source or "web")
            return
        meta["text_from"] = html_field
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
    """One document per line (1-based line number as locator); bad lines become rejects."""
    sink = Sink(f, cfg, "other")
    lineno = 0
    with open(f.path, "rb") as fh:
        stream = open_decompressed(fh, f.path.name)
        try:
            for lineno, raw in enumerate(stream, 1):  # noqa: B007 - lineno is used after the loop
                if not raw.strip():
                    continue  # blank separator lines are not records
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError:
                    sink.reject(lineno, "invalid utf-8", text=raw[:1000].decode("utf-8", "replace"))
                    continue
                try:
                    rec = json.loads(line)
                except ValueError as e:
                    sink.reject(lineno, f"invalid json: {e}", text=line[:1000])
                    continue
                if not isinstance(rec, dict):
                    sink.reject(lineno, f"not a json object: {type(rec).__name__}", text=line[:1000])
                    continue
                _record_doc(sink, cfg, lineno, rec)
        except Exception as e:  # noqa: BLE001 - truncated/corrupt compressed stream: keep what came before
            sink.reject(lineno + 1, f"truncated: {type(e).__name__}: {' '.join(str(e).split())[:200]}")
    if lineno == 0 and not sink.rej["id"]:
        sink.reject(None, "empty file")
    return sink.frames()


def read_parquet(f: InputFile, cfg: IngestConfig) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One document per row (0-based row index as locator), streamed in pyarrow batches."""
    import pyarrow.parquet as pq

    sink = Sink(f, cfg, "other")
    try:
        pf = pq.ParquetFile(f.path)
    except Exception as e:  # noqa: BLE001 - not a parquet file / corrupt footer
        sink.reject(None, f"parquet: unreadable: {type(e).__name__}: {' '.join(str(e).split())[:200]}")
        return sink.frames()
    if pf.metadata.num_rows == 0:
        sink.reject(None, "empty file")
        return sink.frames()
    names = pf.schema_arrow.names
    if not any(c in names for c in (*_TEXT_FIELDS, cfg.jsonl_html_field)):
        # Every row is an input record: each gets its reject, so the accounting holds row by row.
        for row in range(pf.metadata.num_rows):
            sink.reject(row, "parquet: no text column")
        return sink.frames()
    row = 0
    try:
        for batch in pf.iter_batches(batch_size=cfg.parquet_batch_rows):
            for rec in batch.to_pylist():
                _record_doc(sink, cfg, row, rec)
                row += 1
    except Exception as e:  # noqa: BLE001 - a corrupt row group: keep the rows before it
        sink.reject(row, f"truncated: {type(e).__name__}: {' '.join(str(e).split())[:200]}")
    return sink.frames()
