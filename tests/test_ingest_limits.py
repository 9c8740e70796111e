"""Bounded memory on any input: every reader enforces ``max_record_mb`` while streaming (oversized
records become rejects with their size), decompression bombs stay bounded, HTML that defeats the
extractor falls back to plain text. The memory tests measure a subprocess's peak RSS."""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import zstandard
from pydantic import ValidationError
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from pipeline.ingest import IngestConfig, InputFile, discover, read_file
from pipeline.ingest import records as records_mod
from pipeline.ingest._common import Sink
from pipeline.ingest._html import nesting_deeper_than, strip_scripts
from pipeline.ingest.records import MAX_JSON_DEPTH, json_depth
from pipeline.schema import DOC_SCHEMA, REJECTED_SCHEMA

REPO = Path(__file__).resolve().parents[1]
MB = 1 << 20
CAP1 = IngestConfig(max_record_mb=1)
PARA = "<p>" + "The river valley was settled early in the nineteenth century by farmers from the east. " * 3 + "</p>"


def one(tmp_path: Path, name: str, data: bytes) -> InputFile:
    p = tmp_path / name
    p.write_bytes(data)
    files, _ = discover([(None, str(p))])
    assert len(files) == 1
    return files[0]


def read(f: InputFile, cfg: IngestConfig = CAP1) -> tuple[pl.DataFrame, pl.DataFrame]:
    docs, rej = read_file(f, cfg)
    assert docs.schema == pl.Schema(DOC_SCHEMA) and rej.schema == pl.Schema(REJECTED_SCHEMA)
    assert not any(r.startswith("reader error") for r in rej["reason"].to_list()), rej["reason"].to_list()
    return docs, rej


def reasons(rej: pl.DataFrame) -> dict[str, str]:
    return dict(zip(rej["path"].to_list(), rej["reason"].to_list(), strict=True))


def gz_zeros(total: int, piece: int = 16 * MB) -> bytes:
    """``total`` NUL bytes gzipped as repeated members: ~1 KB on disk per MB."""
    member = gzip.compress(b"\0" * piece)
    return member * (total // piece)


def line(text: str) -> bytes:
    return json.dumps({"text": text}).encode() + b"\n"


# --- JSONL ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", ".gz", ".zst"])
def test_jsonl_oversized_line_is_skipped_with_its_size(tmp_path, suffix):
    big = line("x" * (3 * MB))
    exact = b'{"text": "' + b"y" * (MB - 12) + b'"}\n'  # exactly 1 MB before its newline: allowed
    assert len(exact) == MB + 1
    data = line("first") + big + exact + line("after")
    packed = {"": data, ".gz": gzip.compress(data), ".zst": zstandard.ZstdCompressor().compress(data)}[suffix]
    docs, rej = read(one(tmp_path, f"big.jsonl{suffix}", packed))
    assert docs["path"].to_list() == [f"big.jsonl{suffix}#{i}" for i in (1, 3, 4)]
    size = (len(big) - 1) / MB
    assert reasons(rej) == {f"big.jsonl{suffix}#2": f"record too large: {size:.1f} MB > max_record_mb=1"}


def test_jsonl_line_of_nul_bytes_without_newline(tmp_path):
    data = gzip.compress(line("before")) + gzip.compress(b"\0" * (5 * MB))  # the last "line" never ends
    docs, rej = read(one(tmp_path, "nul.jsonl.gz", data))
    assert docs["text"].to_list() == ["before"]
    assert rej["reason"].to_list() == ["record too large: 5.0 MB > max_record_mb=1"]


def test_jsonl_skip_limit_stops_the_file(tmp_path, monkeypatch):
    # Counting an endless line stops at the skip limit (1 GB by default): the rest of the file is one reject.
    monkeypatch.setattr(records_mod, "skip_limit", lambda cfg: 3 * MB)
    data = line("a") + b"z" * (8 * MB) + b"\n" + line("b")
    docs, rej = read(one(tmp_path, "endless.jsonl.gz", gzip.compress(data)))
    assert docs["text"].to_list() == ["a"]
    assert rej["reason"].to_list() == [
        "record too large: over 4.0 MB > max_record_mb=1",
        "unread: rest of file after a record too large to skip",
    ]


def test_file_text_limit_stops_a_bomb_of_records_just_under_the_cap(tmp_path):
    rec = line("w" * 400_000)
    f = one(tmp_path, "many.jsonl.gz", gzip.compress(rec * 50))
    docs, rej = read(f, IngestConfig(max_record_mb=1, max_file_text_mb=1))
    assert len(docs) == 2  # 2 x 400,000 characters fit in 1 MB, the third does not
    assert rej["reason"].to_list() == [
        "file text over max_file_text_mb=1",
        "not read: file text over max_file_text_mb=1; rest of file skipped",
    ]
    assert rej["path"].to_list() == ["many.jsonl.gz#3", "many.jsonl.gz#4"]


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 100_000])
def test_jsonl_deeply_nested_line_is_its_own_reject(tmp_path, depth):
    """Past the interpreter's recursion limit (100,000) or just past ours: a reject at its own line, and
    the lines after it are read."""
    data = line("before") + f'{{"text": "deep", "meta": {nested(depth)}}}\n'.encode() + line("after") + line("end")
    docs, rej = read(one(tmp_path, "deep.jsonl", data))
    assert docs["path"].to_list() == ["deep.jsonl#1", "deep.jsonl#3", "deep.jsonl#4"]
    assert reasons(rej) == {"deep.jsonl#2": f"invalid json: nested too deeply (over {MAX_JSON_DEPTH} levels)"}


def test_jsonl_nesting_up_to_the_limit_kept(tmp_path):
    deep = json.loads(nested(MAX_JSON_DEPTH - 1))
    data = json.dumps({"text": "deep", "meta": deep}).encode() + b"\n" + line("[[[ brackets in text ]]]" * 200)
    docs, rej = read(one(tmp_path, "ok.jsonl", data))
    assert len(rej) == 0 and len(docs) == 2
    assert json.loads(docs["meta"][0])["meta"] == deep


def test_json_depth():
    assert [json_depth(v) for v in (1, "x", [], {}, [[1]], {"a": [{"b": 2}]})] == [0, 0, 1, 1, 2, 3]
    assert json_depth(json.loads(nested(500)), limit=10) == 11  # stops counting past the limit


def test_meta_too_deep_to_write_is_a_reject_not_a_crash(tmp_path):
    """A meta value json.dumps cannot write (RecursionError) rejects that record only."""
    f = one(tmp_path, "x.jsonl", line("x"))
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    sink = Sink(f, IngestConfig(), "other")
    sink.doc(1, "some text", meta={"m": deep})
    sink.doc(2, "more text", meta={"m": [[1]]})
    docs, rej = sink.frames()
    assert docs["path"].to_list() == ["x.jsonl#2"] and reasons(rej) == {"x.jsonl#1": "meta nested too deeply"}


# --- parquet --------------------------------------------------------------------------------------


def _repeat(n: int) -> pa.Array:
    """One string of ``n`` "a" made by arrow (no Python string of that size)."""
    return pc.binary_repeat(pa.array(["a"]), n)


def test_parquet_oversized_cell_rejected_with_size_others_kept(tmp_path):
    texts = pa.concat_arrays([pa.array(["small doc"]), _repeat(3 * MB), pa.array(["another"])])
    p = tmp_path / "cell.parquet"
    pq.write_table(pa.table({"text": texts, "n": [1, 2, 3]}), p, compression="zstd")
    assert p.stat().st_size < 20_000
    docs, rej = read(discover([(None, str(p))])[0][0])
    assert docs["text"].to_list() == ["small doc", "another"]
    assert reasons(rej) == {"cell.parquet#1": "record too large: 3.0 MB > max_record_mb=1"}


def test_parquet_shared_dictionary_value_is_not_expanded(tmp_path):
    # 20,000 rows pointing at one 2 MB dictionary value: 40 GB once expanded, under 1 KB on disk.
    value = _repeat(2 * MB)
    col = pa.DictionaryArray.from_arrays(pa.array([0] * 20_000, pa.int32()), value)
    p = tmp_path / "shared.parquet"
    pq.write_table(pa.table({"text": col}), p, compression="zstd", store_schema=False)
    start = time.perf_counter()
    docs, rej = read(discover([(None, str(p))])[0][0])
    assert time.perf_counter() - start < 20
    assert len(docs) == 0 and len(rej) == 20_000
    assert set(rej["reason"].to_list()) == {"record too large: 2.0 MB > max_record_mb=1"}
    # Under the cap the documents are kept, up to max_file_text_mb; the rest are not materialised.
    docs, rej = read(discover([(None, str(p))])[0][0], IngestConfig(max_record_mb=4, max_file_text_mb=9))
    assert len(docs) == 4 and len(docs) + len(rej) == 20_000
    assert rej["reason"][-1] == "not read: file text over max_file_text_mb=9"


def test_parquet_bomb_row_group_not_read(tmp_path, monkeypatch):
    monkeypatch.setattr(records_mod, "_BOMB_MIN_BYTES", 2 * MB)
    p = tmp_path / "bomb.parquet"
    pq.write_table(pa.table({"text": pa.concat_arrays([pa.array(["x"]), _repeat(5 * MB)])}), p, compression="zstd")
    docs, rej = read(discover([(None, str(p))])[0][0])  # limit: max(2 MB, 4 x max_record_mb)
    assert len(docs) == 0 and rej["path"].to_list() == ["bomb.parquet#0", "bomb.parquet#1"]
    assert rej["reason"][0].startswith("row group not read: column 'text' decompresses to 5.0 MB")


def _nested_list(depth: int) -> tuple[pa.DataType, object]:
    t, v = pa.string(), "leaf value"
    for _ in range(depth):
        t, v = pa.list_(t), [v]
    return t, v


def test_parquet_nested_columns(tmp_path):
    """Nested columns go to meta; deeper than Arrow reads (its schema limit is 100 levels) is one reject
    for the file, not a crash; a string cell holding deeply nested JSON stays a string."""
    t, v = _nested_list(40)
    deep_json = nested(100_000)
    table = pa.table({"text": ["one", "two"], "m": pa.array([v, v], type=t), "s": [deep_json, "{}"]})
    pq.write_table(table, tmp_path / "n40.parquet")
    docs, rej = read(one(tmp_path, "n40.parquet", (tmp_path / "n40.parquet").read_bytes()))
    assert len(rej) == 0 and docs["text"].to_list() == ["one", "two"]
    meta = json.loads(docs["meta"][0])
    assert meta["s"] == deep_json and json_depth(meta["m"]) == 40
    t, v = _nested_list(60)
    pq.write_table(pa.table({"text": ["one"], "m": pa.array([v], type=t)}), tmp_path / "n60.parquet")
    docs, rej = read(one(tmp_path, "n60.parquet", (tmp_path / "n60.parquet").read_bytes()))
    assert len(docs) == 0 and len(rej) == 1 and rej["reason"][0].startswith("parquet: unreadable")
    assert "nested" in rej["reason"][0]


# --- WARC -----------------------------------------------------------------------------------------


def write_warc(path: Path, records: list[tuple[str, bytes, list[tuple[str, str]]]]) -> None:
    with open(path, "wb") as fh:
        w = WARCWriter(fh, gzip=True)
        for uri, payload, headers in records:
            http = StatusAndHeaders("200 OK", [("Content-Type", "text/html"), *headers], protocol="HTTP/1.1")
            w.write_record(w.create_warc_record(uri, "response", payload=io.BytesIO(payload), http_headers=http))


def chunked(data: bytes, size: int) -> bytes:
    parts = [b"%x\r\n" % len(data[i : i + size]) + data[i : i + size] + b"\r\n" for i in range(0, len(data), size)]
    return b"".join(parts) + b"0\r\n\r\n"


def test_warc_oversized_payloads_rejected_with_size(tmp_path):
    page = f"<html><body><article>{PARA}</article></body></html>".encode()
    bomb = gzip.compress(b"\0" * (20 * MB))  # one gzip member, 20 KB
    gz, gz_chunked = [("Content-Encoding", "gzip")], [("Content-Encoding", "gzip"), ("Transfer-Encoding", "chunked")]
    p = tmp_path / "big.warc.gz"
    write_warc(
        p,
        [
            ("http://x/plain", b"<html>" + b"a" * (3 * MB), []),
            ("http://x/bomb", bomb, gz),
            ("http://x/chunked-bomb", chunked(bomb, 4096), gz_chunked),
            ("http://x/ok", chunked(gzip.compress(page), 50), gz_chunked),
        ],
    )
    assert p.stat().st_size < 200_000
    docs, rej = read(discover([(None, str(p))])[0][0])
    assert docs["url"].to_list() == ["http://x/ok"] and "river valley" in docs["text"][0]
    assert dict(zip(rej["url"].to_list(), rej["reason"].to_list(), strict=True)) == {
        "http://x/plain": "record too large: 3.0 MB > max_record_mb=1",
        "http://x/bomb": "record too large: 20.0 MB > max_record_mb=1",
        "http://x/chunked-bomb": "record too large: 20.0 MB > max_record_mb=1",
    }


def test_warc_header_bomb_stops_the_file_not_the_memory(tmp_path):
    good = tmp_path / "good.warc.gz"
    write_warc(good, [("http://x/ok", f"<html><body><article>{PARA}</article></body></html>".encode(), [])])
    # A record whose header "line" is 64 MB of "a": warcio's readline would hold it whole.
    head = gzip.compress(b"WARC/1.0\r\nWARC-Type: response\r\nX-Junk: " + b"a" * (64 * MB))
    docs, rej = read(one(tmp_path, "headers.warc.gz", good.read_bytes() + head))
    assert docs["url"].to_list() == ["http://x/ok"]
    assert rej["reason"].to_list() == ["unreadable: record headers over 8 MB; rest of file not read"]


# --- one-document files -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "size"),
    [
        ("page.html.gz", gz_zeros(32 * MB), "32.0"),
        ("book.txt.gz", gz_zeros(32 * MB), "32.0"),
        ("book.txt", b"word " * (MB // 2), "2.5"),
        ("big.py", b"x = 1\n" * MB, "6.0"),
    ],
)
def test_one_document_files_over_the_cap(tmp_path, name, data, size):
    docs, rej = read(one(tmp_path, name, data))
    assert len(docs) == 0 and rej["reason"].to_list() == [f"record too large: {size} MB > max_record_mb=1"]


# --- HTML the extractor gives up on -------------------------------------------------------------------


def test_html_deep_nesting_falls_back_to_plain_text(tmp_path):
    html = "<html><head><title>t</title></head><body>" + "<div>" * 400 + PARA + "</div>" * 400 + "</body></html>"
    docs, rej = read(one(tmp_path, "deep.html", html.encode()), IngestConfig())
    assert len(rej) == 0 and "river valley was settled" in docs["text"][0]
    assert json.loads(docs["meta"][0])["extraction"] == "fallback"
    # The same page inside a JSONL record and a WARC record.
    docs, _ = read(one(tmp_path, "pages.jsonl", json.dumps({"html": html}).encode() + b"\n"), IngestConfig())
    assert json.loads(docs["meta"][0])["extraction"] == "fallback" and "river valley" in docs["text"][0]
    p = tmp_path / "deep.warc.gz"
    write_warc(p, [("http://x/deep", html.encode(), [])])
    docs, _ = read(discover([(None, str(p))])[0][0], IngestConfig())
    assert json.loads(docs["meta"][0])["extraction"] == "fallback" and "river valley" in docs["text"][0]


def test_html_very_deep_nesting_stays_fast(tmp_path):
    depth = 100_000  # resiliparse's main-content pass would take minutes: skipped past 1000 levels
    html = "<html><body>" + "<div>" * depth + PARA + "</div>" * depth + "</body></html>"
    start = time.perf_counter()
    docs, _ = read(one(tmp_path, "deeper.html.gz", gzip.compress(html.encode())), IngestConfig())
    assert time.perf_counter() - start < 20
    assert "river valley" in docs["text"][0] and json.loads(docs["meta"][0])["extraction"] == "fallback"


def test_html_huge_script_cut_before_extraction(tmp_path):
    html = (
        "<html><head><title>t</title><script>" + "var a=1;" * (20_000_000 // 8) + "</script>"
        "<!--" + "c" * 1000 + "--></head><body><nav>Home | About</nav><article>" + PARA + "</article></body></html>"
    )
    docs, rej = read(one(tmp_path, "script.html.gz", gzip.compress(html.encode())), IngestConfig())
    assert len(rej) == 0 and "river valley" in docs["text"][0] and "var a" not in docs["text"][0]
    assert "extraction" not in json.loads(docs["meta"][0])  # the main extractor found it


def test_fallback_needs_a_real_paragraph(tmp_path):
    menu = "<html><body>" + "<div>" * 400 + "<a href='/'>Home</a> <a href='/x'>About us</a>" + "</div>" * 400
    docs, rej = read(one(tmp_path, "menu.html", menu.encode()), IngestConfig())
    assert len(docs) == 0 and rej["reason"].to_list() == ["no main text"]


def test_strip_scripts():
    assert strip_scripts("<p>a</p><script type=x>var s = '<p>';</script><style>b{}</style>c") == (
        "<p>a</p><script type=x></script><style></style>c"
    )
    # A script tag inside a comment is no script; comments go only when asked.
    assert strip_scripts("a<!-- <script> -->b") == "a<!-- <script> -->b"
    assert strip_scripts("a<!-- <script> -->b", comments=True) == "ab"
    assert strip_scripts("a<script>never closed") == "a<script>"
    assert strip_scripts("<scripture>kept</scripture>") == "<scripture>kept</scripture>"
    # Hostile markup stays linear: 200,000 unclosed script tags.
    start = time.perf_counter()
    strip_scripts("<script " * 200_000, comments=True)
    strip_scripts("<!--" * 200_000 + "<script>x" * 200_000)
    assert time.perf_counter() - start < 5


def test_nesting_depth():
    assert nesting_deeper_than("<div>" * 11, 10) and not nesting_deeper_than("<div></div>" * 50, 10)
    assert not nesting_deeper_than("<div>" + "<br><img src=x>" * 50 + "</div>", 10)


# --- configuration ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"max_record_mb": 0},
        {"max_record_mb": 2048},
        {"max_file_mb": 0},
        {"max_file_text_mb": 0},
        {"parquet_batch_rows": 0},
        {"jsonl_html_field": ""},
    ],
)
def test_config_bounds(bad):
    with pytest.raises(ValidationError):
        IngestConfig(**bad)


def test_config_defaults_unchanged():
    cfg = IngestConfig()
    assert (cfg.max_record_mb, cfg.max_file_mb, cfg.max_file_text_mb) == (64, 512, 2048)
    assert IngestConfig(jsonl_html_field=None).jsonl_html_field is None


# --- peak memory of a reader, in a subprocess -------------------------------------------------------

# The child reports its own peak: VmHWM of its address space. (ru_maxrss, for the child or from the
# parent's RUSAGE_CHILDREN, starts from the parent's RSS at the fork/exec, which is not the reader's.)
_CHILD = """
import json, re, resource, sys
from pipeline.ingest import IngestConfig, discover, read_file
f = discover([(None, sys.argv[1])])[0][0]
docs, rej = read_file(f, IngestConfig())
try:
    rss = int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) // 1024
except OSError:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
print(json.dumps({"docs": docs["text"].to_list(), "reasons": rej["reason"].to_list(), "rss_mb": rss}))
"""
RSS_LIMIT_MB = 1536


def peak_rss(path: Path) -> dict:
    """Run ``read_file`` on ``path`` in a fresh interpreter; its output and its own peak RSS."""
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path)], cwd=REPO, capture_output=True, text=True, timeout=300, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _bomb_jsonl_gz(p: Path) -> None:
    p.write_bytes(gzip.compress(line("before")) + gz_zeros(1 << 30) + gzip.compress(b"\n" + line("after")))


def _bomb_jsonl_zst(p: Path) -> None:
    c = zstandard.ZstdCompressor()
    p.write_bytes(c.compress(line("before")) + c.compress(b"\0" * (256 * MB)) * 4 + c.compress(b"\n" + line("after")))


def _cell_parquet(p: Path) -> None:
    texts = pa.concat_arrays([pa.array(["before"]), _repeat(110 * MB), pa.array(["after"])])
    pq.write_table(pa.table({"text": texts}), p, compression="zstd")


def _bomb_warc(p: Path) -> None:
    page = f"<html><body><article>{PARA}</article></body></html>".encode()
    write_warc(p, [("http://x/bomb", gz_zeros(1 << 30), [("Content-Encoding", "gzip")]), ("http://x/ok", page, [])])


def _bomb_html(p: Path) -> None:
    p.write_bytes(gz_zeros(1 << 30))


_TOO_BIG = "record too large: {} MB > max_record_mb=64"
# file name -> (writer, expected documents or None, expected reject reason)
_HUGE = {
    "bomb.jsonl.gz": (_bomb_jsonl_gz, ["before", "after"], _TOO_BIG.format("1024.0")),
    "bomb.jsonl.zst": (_bomb_jsonl_zst, ["before", "after"], _TOO_BIG.format("1024.0")),
    "cell.parquet": (_cell_parquet, ["before", "after"], _TOO_BIG.format("110.0")),
    "bomb.warc.gz": (_bomb_warc, None, _TOO_BIG.format("1024.0")),
    "bomb.html.gz": (_bomb_html, [], _TOO_BIG.format("1024.0")),
}


@pytest.mark.parametrize("name", list(_HUGE))
def test_peak_rss_of_huge_records(tmp_path, name):
    make, docs, reason = _HUGE[name]
    p = tmp_path / name
    make(p)
    assert p.stat().st_size < 2 * MB  # small on disk, huge once decompressed
    got = peak_rss(p)
    print(f"{name}: peak RSS {got['rss_mb']} MB")
    assert got["reasons"] == [reason]
    if docs is not None:
        assert got["docs"] == docs
    assert got["rss_mb"] < RSS_LIMIT_MB, got["rss_mb"]


def test_bad_input_corpus_read_directly(tmp_path):
    """The generated bad-input corpus (tests/bad_inputs.py) through ``read_file`` alone: every file gives
    rows, none a reader error (the end-to-end version runs the CLI and is marked slow)."""
    from tests.bad_inputs import make_bad_corpus

    names = make_bad_corpus(tmp_path / "bad")
    files, _ = discover([(None, str(tmp_path / "bad"))])
    assert sorted(f.display for f in files) == sorted(f"bad/{n}" for n in names)
    for f in files:
        docs, rej = read(f, IngestConfig())
        assert len(docs) + len(rej) >= 1, f.display
    docs, _ = read(by_name(files, "bad/nested.html"), IngestConfig())
    assert json.loads(docs["meta"][0])["extraction"] == "fallback"  # 100,000 nested <div>: kept


def by_name(files: list[InputFile], display: str) -> InputFile:
    return next(f for f in files if f.display == display)
