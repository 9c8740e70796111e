"""A corpus of broken inputs, generated: each file is one way real data goes wrong.

``make_bad_corpus(root)`` writes the files and returns, per file (by name), the number of records it
was written with and whether all of them must be findable by id (``intact``): records of a file that
is cut or corrupted midway cannot all be recovered, only accounted for by a reject at the break.
"""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

WORDS = "the river ran past old mills and quiet farms while rain fell on the hills near town".split()


def sentence(rng: random.Random, n: int = 40) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def jsonl(records: list[Any]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


def warc_record(url: str, html: str, declared: int | None = None) -> bytes:
    http = f"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}".encode()
    length = len(http) if declared is None else declared
    head = (
        f"WARC/1.0\r\nWARC-Type: response\r\nWARC-Target-URI: {url}\r\nWARC-Date: 2024-01-01T00:00:00Z\r\n"
        f"WARC-Record-ID: <urn:uuid:{abs(hash(url)) % 10**12}>\r\nContent-Type: application/http; msgtype=response\r\n"
        f"Content-Length: {length}\r\n\r\n"
    )
    return head.encode() + http + b"\r\n\r\n"


def page(rng: random.Random, title: str) -> str:
    body = "".join(f"<p>{sentence(rng)}</p>" for _ in range(5))
    return f"<html><head><title>{title}</title></head><body><article>{body}</article></body></html>"


def flip(data: bytes, at: float, n: int = 64) -> bytes:
    """``data`` with ``n`` bytes overwritten by garbage at relative position ``at``."""
    i = int(len(data) * at)
    return data[:i] + bytes((b ^ 0x5A) for b in data[i : i + n]) + data[i + n :]


def make_bad_corpus(root: Path, big_mb: int = 0) -> dict[str, dict[str, Any]]:
    """Write the bad-input corpus under ``root``; ``big_mb`` > 0 adds single-line files of that size."""
    rng = random.Random(3)
    root.mkdir(parents=True, exist_ok=True)
    files: dict[str, dict[str, Any]] = {}

    def put(name: str, data: bytes, records: int, intact: bool) -> None:
        (root / name).write_bytes(data)
        files[name] = {"records": records, "intact": intact}

    good = [{"text": sentence(rng), "url": f"https://example.net/{i}"} for i in range(200)]
    gz = gzip.compress(jsonl(good))
    zst = zstandard.ZstdCompressor().compress(jsonl(good))
    put("truncated.jsonl.gz", gz[: len(gz) // 2], len(good), False)
    put("corrupt.jsonl.gz", flip(gz, 0.5), len(good), False)
    put("truncated.jsonl.zst", zst[: len(zst) // 2], len(good), False)
    put("corrupt.jsonl.zst", flip(zst, 0.5), len(good), False)

    lines = [json.dumps({"text": sentence(rng)}).encode() for _ in range(6)]
    lines[1] = b'{"text": "caf\xe9 au lait \xff\xfe is not utf-8"}'
    lines[4] = b'{"text": "\xc3\x28 broken \xa0\xa1 sequence"}'
    put("invalid_utf8.jsonl", b"\n".join(lines) + b"\n", len(lines), True)
    put("latin1_book.txt", ("Caf\u00e9 na\u00efve r\u00e9sum\u00e9. " + sentence(rng, 400)).encode("latin-1"), 1, True)

    nul = [
        json.dumps({"text": "escaped NUL \u0000 inside " + sentence(rng)}).encode(),
        b'{"text": "raw NUL \x00 byte in the line"}',
        json.dumps({"text": sentence(rng)}).encode(),
    ]
    put("nul.jsonl", b"\n".join(nul) + b"\n", len(nul), True)
    put("nul_book.txt", (sentence(rng, 200) + "\x00\x00\x00" * 2000).encode(), 1, True)

    wrong = [
        {"text": 12345},
        {"text": ["a", "list"]},
        {"text": None},
        {"text": {"nested": "dict"}},
        {"text": True},
        [1, 2, 3],
        "just a string",
        {"content": 3.5},
        {"text": sentence(rng), "url": 42, "source": ["web"], "id": {"x": 1}},
        {"text": sentence(rng), "source": {"not": "hashable"}},
        {"text": sentence(rng), "meta": {"deep": [[[1]]]}, "score": float("inf")},
        {"no_text_here": "at all"},
    ]
    put("wrong_types.jsonl", b"\n".join(json.dumps(r).encode() for r in wrong) + b"\n", len(wrong), True)

    table = pa.table({"body": [sentence(rng) for _ in range(25)], "n": list(range(25))})
    pq.write_table(table, root / "no_text.parquet")
    files["no_text.parquet"] = {"records": 25, "intact": True}
    pq.write_table(pa.table({"text": list(range(10)), "url": ["u"] * 10}), root / "int_text.parquet")
    files["int_text.parquet"] = {"records": 10, "intact": True}

    depth = 100_000
    nested = "<html><body>" + "<div>" * depth + sentence(rng) + "</div>" * depth + "</body></html>"
    put("nested.html", nested.encode(), 1, True)
    put("nested_tags.html", ("<b><i>" * 50_000 + "x" + "</i></b>" * 50_000).encode(), 1, True)

    recs = [warc_record(f"https://example.org/{i}", page(rng, f"P{i}")) for i in range(4)]
    # Content-Length larger than the record: the file ends inside it.
    put("long_length.warc", b"".join(recs[:3]) + warc_record("https://example.org/x", page(rng, "X"), 10**6), 4, False)
    # Content-Length smaller than the record: the rest of it is read as the next header.
    short = warc_record("https://example.org/y", page(rng, "Y"), 40)
    put("short_length.warc", b"".join(recs[:2]) + short + recs[3], 4, False)
    put("short_length.warc.gz", b"".join(gzip.compress(r) for r in (recs[0], short, recs[1])), 3, False)

    if big_mb:
        n = big_mb << 20
        one_line = " ".join(rng.choice(WORDS) for _ in range(n // 4 + 1))[:n]
        put("one_line_50mb.jsonl", json.dumps({"text": one_line}).encode() + b"\n", 1, True)
        put("one_line_50mb.txt", one_line.encode(), 1, True)
    return files
