"""Tests for pipeline.ingest: discovery, every reader, bad inputs, and the shared real data."""

from __future__ import annotations

import gzip
import io
import json
import re
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from pipeline.ids import doc_id
from pipeline.ingest import IngestConfig, InputFile, detect_format, discover, parse_input_arg, read_file
from pipeline.schema import DOC_SCHEMA, REJECTED_SCHEMA, SOURCES

CFG = IngestConfig()

ARTICLE = (
    "<p>The river valley was settled early in the nineteenth century by farmers who came "
    "from the eastern provinces looking for good land and fresh water.</p>"
    "<p>Over the following decades the town grew around the mill, and a school, a church and "
    "a small library were built with money raised by the residents themselves.</p>"
    "<p>Today the old mill is a museum that tells the story of those settlers, their crops, "
    "their tools and the floods that shaped the valley every spring.</p>"
)


def page(body: str = ARTICLE, head: str = "", title: str = "Valley history") -> str:
    return (
        f"<!DOCTYPE html><html><head>{head}<title>{title}</title></head><body>"
        f"<nav><a href='/'>Home</a> | <a href='/about'>About</a></nav>"
        f"<article><h1>{title}</h1>{body}</article><footer>Contact us</footer></body></html>"
    )


# --- helpers ------------------------------------------------------------------------------------


def one(tmp_path: Path, name: str, data: bytes | str, source: str | None = None) -> InputFile:
    p = tmp_path / name
    p.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    files, _ = discover([(source, str(p))])
    assert len(files) == 1
    return files[0]


def read(f: InputFile, cfg: IngestConfig = CFG) -> tuple[pl.DataFrame, pl.DataFrame]:
    docs, rej = read_file(f, cfg)
    assert docs.schema == pl.Schema(DOC_SCHEMA)
    assert rej.schema == pl.Schema(REJECTED_SCHEMA)
    assert set(rej["stage"].to_list()) <= {"ingest"}
    assert not any(r.startswith("reader error") for r in rej["reason"].to_list()), rej["reason"].to_list()
    assert set(docs["source"].to_list()) <= set(SOURCES)
    assert docs["id"].n_unique() == len(docs)
    for m in docs["meta"].to_list():
        assert isinstance(json.loads(m), dict)
    return docs, rej


def http(status: str, ctype: str | None, extra: list[tuple[str, str]] | None = None) -> StatusAndHeaders:
    headers = [("Content-Type", ctype)] if ctype else []
    return StatusAndHeaders(status, headers + (extra or []), protocol="HTTP/1.1")


def write_warc(path: Path, records: list[tuple], gz: bool = True) -> list[int]:
    """Write (kind, uri, payload, ctype, status/extra) records; return each record's byte offset."""
    offsets = []
    with open(path, "wb") as fh:
        w = WARCWriter(fh, gzip=gz)
        w.write_record(w.create_warcinfo_record(path.name, {"software": "refinery-test"}))
        for kind, uri, payload, ctype, *rest in records:
            offsets.append(fh.tell())
            if kind == "response":
                status = rest[0] if rest else "200 OK"
                extra = rest[1] if len(rest) > 1 else None
                rec = w.create_warc_record(
                    uri, "response", payload=io.BytesIO(payload), http_headers=http(status, ctype, extra)
                )
            elif kind == "revisit":
                rec = w.create_revisit_record(uri, "sha1:AAAA", "http://x/", "2020-01-01T00:00:00Z")
            elif kind == "request":
                rec = w.create_warc_record(
                    uri, "request", payload=io.BytesIO(b""),
                    http_headers=StatusAndHeaders("GET / HTTP/1.1", [("Host", "x")], is_http_request=True),
                )  # fmt: skip
            else:  # resource, conversion, metadata
                rec = w.create_warc_record(
                    uri, kind, payload=io.BytesIO(payload), warc_content_type=ctype or "text/plain"
                )
            w.write_record(rec)
    return offsets


def chunked(data: bytes, size: int = 100) -> bytes:
    out = b""
    for i in range(0, len(data), size):
        part = data[i : i + size]
        out += b"%x\r\n" % len(part) + part + b"\r\n"
    return out + b"0\r\n\r\n"


# --- arguments & discovery ----------------------------------------------------------------------


def test_parse_input_arg():
    assert parse_input_arg("web=some/dir") == ("web", "some/dir")
    assert parse_input_arg("some/dir") == (None, "some/dir")
    assert parse_input_arg("code=a=b") == ("code", "a=b")
    with pytest.raises(ValueError):
        parse_input_arg("nosuch=some/dir")


def test_detect_format():
    cases = {
        "a.warc.gz": "warc", "a.warc": "warc", "a.arc.gz": "arc", "a.warc.wet.gz": "wet",
        "a.wet": "wet", "a.warc.wat.gz": "wat", "a.html": "html", "a.htm.gz": "html",
        "a.jsonl": "jsonl", "a.jsonl.zst": "jsonl", "a.jsonl.gz": "jsonl", "a.parquet": "parquet",
        "a.txt": "book", "a.txt.gz": "book", "a.py": "code", "Makefile": "code", "Dockerfile": "code",
        "a.pdf": "unknown", "a.json": "unknown",
    }  # fmt: skip
    for name, fmt in cases.items():
        assert detect_format(name, in_folder=False) == fmt, name
    assert detect_format("a.json", in_folder=True) == "code"
    assert detect_format("README.md", in_folder=True) == "code"


def test_discover_folder_sorted_hidden_skipped(tmp_path):
    root = tmp_path / "corpus"
    (root / "b").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref")
    (root / "b" / "z.py").write_text("print(1)\n")
    (root / "a.txt").write_text("hello")
    (root / "data.xyz").write_text("?")
    (root / ".hidden.py").write_text("x = 1\n")
    files, warnings = discover([(None, str(root))])
    assert [f.display for f in files] == ["corpus/a.txt", "corpus/b/z.py", "corpus/data.xyz"]
    assert [f.fmt for f in files] == ["book", "code", "unknown"]
    assert any("data.xyz" in w for w in warnings)
    # unknown files are kept and become a rejected row, not silently dropped
    docs, rej = read(files[2])
    assert len(docs) == 0 and rej["reason"].to_list() == ["unsupported file type: .xyz"]
    assert rej["path"].to_list() == ["corpus/data.xyz"]


def test_discover_single_file_glob_and_missing(tmp_path):
    (tmp_path / "d").mkdir()
    for n in ("x.jsonl", "y.jsonl"):
        (tmp_path / "d" / n).write_text('{"text": "hi"}\n')
    files, _ = discover([(None, str(tmp_path / "d" / "x.jsonl"))])
    assert files[0].display == "x.jsonl" and files[0].size == len('{"text": "hi"}\n')
    files, _ = discover([(None, str(tmp_path / "d" / "*.jsonl"))])
    assert [f.display for f in files] == ["d/x.jsonl", "d/y.jsonl"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        discover([(None, str(tmp_path / "nope"))])
    with pytest.raises(FileNotFoundError, match="matches no file"):
        discover([(None, str(tmp_path / "d" / "*.parquet"))])


def test_source_override(tmp_path):
    f = one(tmp_path, "a.jsonl", '{"text": "hello world"}\n{"text": "x", "source": "book"}\n', source="web")
    docs, _ = read(f)
    assert docs["source"].to_list() == ["web", "web"]
    f = one(tmp_path, "b.jsonl", '{"text": "hello world"}\n{"text": "x", "source": "book"}\n')
    docs, _ = read(f)
    assert docs["source"].to_list() == ["other", "book"]
    f = one(tmp_path, "c.txt", "Plain words here.\n", source="other")
    assert read(f)[0]["source"].to_list() == ["other"]


# --- JSONL / parquet ----------------------------------------------------------------------------


def test_jsonl_gzip_fields_and_ids(tmp_path):
    lines = [
        {"id": "orig-1", "text": "First document.", "url": "http://a/1", "lang": "en"},
        {"content": "def f():\n    return 1\n", "language": "Python", "repo": "o/r"},
        {"text": "Third, with an unknown source.", "source": "commoncrawl"},
    ]
    data = gzip.compress(("\n".join(json.dumps(x) for x in lines) + "\n").encode())
    f = one(tmp_path, "part.jsonl.gz", data)
    docs, rej = read(f)
    assert len(rej) == 0 and len(docs) == 3
    assert docs["id"].to_list() == [doc_id("part.jsonl.gz", i) for i in (1, 2, 3)]
    assert docs["path"].to_list() == ["part.jsonl.gz#1", "part.jsonl.gz#2", "part.jsonl.gz#3"]
    assert docs["source"].to_list() == ["other", "code", "other"]
    assert docs["url"].to_list() == ["http://a/1", None, None]
    m0, m1, m2 = (json.loads(m) for m in docs["meta"])
    assert m0 == {"orig_id": "orig-1", "lang": "en"}
    assert m1 == {"language": "Python", "repo": "o/r"}
    assert m2 == {"orig_source": "commoncrawl"}
    assert docs["meta"][0] == json.dumps(m0, sort_keys=True, ensure_ascii=False)
    # stable ids: reading again gives the same ids
    assert read(f)[0]["id"].to_list() == docs["id"].to_list()


def test_jsonl_bad_lines(tmp_path):
    raw = b"\n".join(
        [
            b'{"text": "good one"}',
            b"this is not json",
            b'["a", "list"]',
            b'{"text": 42}',
            b'{"title": "no text"}',
            b'{"text": "caf\xe9 latin-1 bytes"}',
            b"",
            b'{"text": "   "}',
            b'{"text": "good two"}',
        ]
    )
    docs, rej = read(one(tmp_path, "bad.jsonl", raw + b"\n"))
    assert docs["text"].to_list() == ["good one", "good two"]
    assert docs["path"].to_list() == ["bad.jsonl#1", "bad.jsonl#9"]
    reasons = dict(zip(rej["path"].to_list(), rej["reason"].to_list(), strict=True))
    assert reasons["bad.jsonl#2"].startswith("invalid json")
    assert reasons["bad.jsonl#3"] == "not a json object: list"
    assert reasons["bad.jsonl#4"] == "non-string text: int"
    assert reasons["bad.jsonl#5"] == "missing text field"
    assert reasons["bad.jsonl#6"] == "invalid utf-8"
    assert reasons["bad.jsonl#8"] == "empty"
    assert len(rej) == 6  # the blank line 7 is not a record


def _many_lines(n: int) -> bytes:
    return b"".join(b'{"text": "document number %d with some words"}\n' % i for i in range(n))


def test_jsonl_truncated_gzip_and_zstd(tmp_path):
    data = _many_lines(20000)
    gz = gzip.compress(data)
    docs, rej = read(one(tmp_path, "cut.jsonl.gz", gz[: len(gz) // 2]))
    assert 1000 < len(docs) < 20000
    assert len(rej) == 1 and rej["reason"][0].startswith("truncated")
    assert rej["path"][0] == f"cut.jsonl.gz#{len(docs) + 1}"

    zst = zstandard.ZstdCompressor().compress(data)
    docs, rej = read(one(tmp_path, "full.jsonl.zst", zst))
    assert len(docs) == 20000 and len(rej) == 0
    docs, rej = read(one(tmp_path, "cut.jsonl.zst", zst[: len(zst) // 2]))
    assert 1000 < len(docs) < 20000
    assert len(rej) == 1 and rej["reason"][0].startswith("truncated")


def test_jsonl_zstd_multiframe(tmp_path):
    c = zstandard.ZstdCompressor()
    data = c.compress(_many_lines(10)) + c.compress(b'{"text": "second frame"}\n')
    docs, rej = read(one(tmp_path, "multi.jsonl.zst", data))
    assert len(docs) == 11 and len(rej) == 0 and docs["text"][-1] == "second frame"


def test_jsonl_html_field_extracted(tmp_path):
    rec = {"id": "p1", "url": "http://v/1", "html": page()}
    docs, rej = read(one(tmp_path, "pages.jsonl", json.dumps(rec) + "\n"))
    assert len(docs) == 1 and docs["source"][0] == "web"
    assert "old mill is a museum" in docs["text"][0] and "Contact us" not in docs["text"][0]
    assert "html" not in json.loads(docs["meta"][0])


def test_parquet(tmp_path):
    t = pa.table({"text": ["alpha doc", None, "gamma doc"], "url": ["http://a", None, None], "n": [1, 2, 3]})
    p = tmp_path / "t.parquet"
    pq.write_table(t, p, row_group_size=2)
    docs, rej = read(one(tmp_path, "t.parquet", p.read_bytes()))
    assert docs["text"].to_list() == ["alpha doc", "gamma doc"]
    assert docs["path"].to_list() == ["t.parquet#0", "t.parquet#2"]
    assert [json.loads(m)["n"] for m in docs["meta"]] == [1, 3]
    assert rej["path"].to_list() == ["t.parquet#1"] and rej["reason"][0] == "missing text field"

    pq.write_table(pa.table({"body": ["x"]}), tmp_path / "nt.parquet")
    docs, rej = read(discover([(None, str(tmp_path / "nt.parquet"))])[0][0])
    assert len(docs) == 0 and rej["reason"].to_list() == ["parquet: no text column"]
    docs, rej = read(one(tmp_path, "junk.parquet", b"PAR1 not really"))
    assert len(docs) == 0 and rej["reason"][0].startswith("parquet: unreadable")


# --- web ----------------------------------------------------------------------------------------


def test_warc_reader(tmp_path):
    html = page().encode()
    latin = page(
        head='<meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1">',
        body="<p>" + "Le café de la gare est très animé le matin. " * 6 + "</p>",
    ).encode("latin-1")
    p = tmp_path / "crawl.warc.gz"
    offs = write_warc(
        p,
        [
            ("request", "http://site/a", b"", None),
            ("response", "<http://site/a>", html, "text/html; charset=utf-8"),
            ("response", "http://site/b", chunked(html), "text/html", "200 OK", [("Transfer-Encoding", "chunked")]),
            ("revisit", "http://site/a", b"", None),
            ("response", "http://site/img.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 50, "image/png"),
            ("response", "http://site/gone", page().encode(), "text/html", "404 Not Found"),
            ("response", "http://site/empty", b"<html><body></body></html>", "text/html"),
            ("response", "http://site/latin", latin, "text/html"),
            ("resource", "file:///notes.txt", b"Plain resource text.", "text/plain"),
            ("metadata", "http://site/a", b"fetchTimeMs: 5", "application/warc-fields"),
        ],  # fmt: skip
    )
    f = discover([(None, str(p))])[0][0]
    docs, rej = read(f)
    assert docs["url"].to_list() == ["http://site/a", "http://site/b", "http://site/latin", "file:///notes.txt"]
    assert docs["path"].to_list() == [f"crawl.warc.gz#{o}" for o in (offs[1], offs[2], offs[7], offs[8])]
    assert docs["id"].to_list() == [doc_id("crawl.warc.gz", o) for o in (offs[1], offs[2], offs[7], offs[8])]
    assert set(docs["source"].to_list()) == {"web"}
    a, b, lat, res = docs["text"].to_list()
    assert "old mill is a museum" in a and "Home" not in a and "Contact us" not in a
    assert a == b  # chunked transfer encoding decoded
    assert "Le café de la gare" in lat
    assert res == "Plain resource text."
    meta = json.loads(docs["meta"][0])
    assert meta["title"] == "Valley history" and meta["warc_type"] == "response"
    assert meta["http_charset"] == "utf-8" and meta["content_type"] == "text/html; charset=utf-8"
    assert meta["warc_date"]
    assert json.loads(docs["meta"][2])["encoding"].endswith("(meta)")
    # request, revisit, metadata and warcinfo records are neither documents nor rejects
    assert dict(zip(rej["url"].to_list(), rej["reason"].to_list(), strict=True)) == {
        "http://site/img.png": "unsupported content-type: image/png",
        "http://site/gone": "http status 404",
        "http://site/empty": "no main text",
    }
    assert read(f)[0]["id"].to_list() == docs["id"].to_list()


def test_wet_conversion_and_arc(tmp_path):
    p = tmp_path / "x.warc.wet.gz"
    write_warc(p, [("conversion", "http://w/1", "Texte déjà extrait.\nLigne 2.".encode(), "text/plain")])
    docs, rej = read(discover([(None, str(p))])[0][0])
    assert docs["text"].to_list() == ["Texte déjà extrait.\nLigne 2."] and len(rej) == 0
    assert json.loads(docs["meta"][0])["warc_type"] == "conversion"

    body = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n" + page().encode()
    filedesc_body = b"1 0 Test\nURL IP-address Archive-date Content-type Archive-length\n"
    arc = b"filedesc://x.arc 0.0.0.0 20200101000000 text/plain %d\n" % len(filedesc_body) + filedesc_body + b"\n"
    off = len(arc)
    arc += b"http://arc.example/ 1.2.3.4 20200101000000 text/html %d\n" % len(body) + body + b"\n"
    members = gzip.compress(arc[:off]) + gzip.compress(arc[off:])  # one gzip member per record
    docs, rej = read(one(tmp_path, "x.arc.gz", members))
    assert len(rej) == 0 and docs["url"].to_list() == ["http://arc.example/"]
    assert "old mill" in docs["text"][0]
    assert docs["path"].to_list() == [f"x.arc.gz#{len(gzip.compress(arc[:off]))}"]
    # a whole file gzipped as one member is read too (offsets then count decompressed bytes)
    docs, rej = read(one(tmp_path, "single.arc.gz", gzip.compress(arc)))
    assert len(rej) == 0 and docs["path"].to_list() == [f"single.arc.gz#{off}"]
    docs2, _ = read(one(tmp_path, "y.arc", arc))
    assert docs2["path"].to_list() == [f"y.arc#{off}"]


def test_warc_truncated_gzip(tmp_path):
    recs = [("response", f"http://t/{i}", page(title=f"Page {i}").encode(), "text/html") for i in range(6)]
    p = tmp_path / "full.warc.gz"
    write_warc(p, recs)
    full = p.read_bytes()
    assert len(read(discover([(None, str(p))])[0][0])[0]) == 6
    docs, rej = read(one(tmp_path, "cut.warc.gz", full[: len(full) // 2]))
    assert 1 <= len(docs) < 6
    assert docs["url"].to_list() == [f"http://t/{i}" for i in range(len(docs))]
    assert len(rej) == 1 and rej["reason"][0].startswith("truncated")
    assert rej["id"][0] == doc_id("cut.warc.gz", int(rej["path"][0].split("#")[1]))


def test_warc_broken_header(tmp_path):
    recs = [("response", f"http://h/{i}", page(title=f"Page {i}").encode(), "text/html") for i in range(3)]
    p = tmp_path / "plain.warc"
    offs = write_warc(p, recs, gz=False)
    raw = bytearray(p.read_bytes())
    assert raw[offs[1] : offs[1] + 8] == b"WARC/1.0"
    raw[offs[1] : offs[1] + 8] = b"GARBAGE!"
    docs, rej = read(one(tmp_path, "broken.warc", bytes(raw)))
    assert docs["url"].to_list() == ["http://h/0"]
    assert rej["path"].to_list() == [f"broken.warc#{offs[1]}"]
    assert rej["reason"][0].startswith("truncated")


def test_not_an_archive(tmp_path):
    docs, rej = read(one(tmp_path, "junk.warc", b"hello, I am not a WARC file\n" * 20))
    assert len(docs) == 0 and len(rej) == 1
    assert rej["reason"][0].startswith("not a readable archive")


def test_empty_files(tmp_path):
    for name in ("e.warc.gz", "e.jsonl", "e.txt", "e.py", "e.html", "e.parquet"):
        docs, rej = read(one(tmp_path, name, b""))
        assert len(docs) == 0 and rej["reason"].to_list() == ["empty file"], name
        assert rej["id"].to_list() == [doc_id(name)]
    docs, rej = read(one(tmp_path, "e2.jsonl.gz", gzip.compress(b"")))
    assert len(docs) == 0 and rej["reason"].to_list() == ["empty file"]


def test_html_file_meta_charset_and_canonical(tmp_path):
    html = page(
        head='<meta charset="iso-8859-1"><link rel="canonical" href="https://ex.org/café">',
        body="<p>" + "Un été à la campagne, près de la rivière, sous les arbres. " * 5 + "</p>",
    ).encode("latin-1")
    docs, rej = read(one(tmp_path, "page.html", html))
    assert len(rej) == 0 and docs["source"].to_list() == ["web"]
    assert "Un été à la campagne" in docs["text"][0]
    assert docs["url"].to_list() == ["https://ex.org/caf%C3%A9"]  # normalised: percent-encoded
    assert docs["path"].to_list() == ["page.html"] and docs["id"][0] == doc_id("page.html")
    og = page(head='<meta property="og:url" content="https://og.example/x">')
    docs, _ = read(one(tmp_path, "og.htm.gz", gzip.compress(og.encode())))
    assert docs["url"].to_list() == ["https://og.example/x"]
    empty = "<html><head><title>t</title></head><body><script>var x = 1;</script></body></html>"
    docs, rej = read(one(tmp_path, "nothing.html", empty))
    assert len(docs) == 0 and rej["reason"].to_list() == ["no main text"]


# --- books --------------------------------------------------------------------------------------

OLD_HEADER = """The Project Gutenberg Etext of A Test Book

Copyright laws are changing all over the world, be sure to check
the copyright laws for your country before posting these files!!

**Welcome To The World of Free Plain Vanilla Electronic Texts**

***START**THE SMALL PRINT!**FOR PUBLIC DOMAIN ETEXTS**START***
Why is this "Small Print!" statement here?  You know: lawyers.
They tell us you might sue us if there is something wrong with
your copy of this etext, even if you got it for free from
someone other than us, and even if what's wrong is not our
fault.  So, among other things, this "Small Print!" statement
disclaims most of our liability to you.
*END*THE SMALL PRINT! FOR PUBLIC DOMAIN ETEXTS*Ver.04.29.93*END*

This etext was prepared by a team of Project Gutenberg volunteers.

"""
BODY = "CHAPTER I\n\n" + "Déjà vu in the café, said the naïve señor, and he left at once.\n" * 40


def test_book_old_style_latin1(tmp_path):
    text = OLD_HEADER + BODY + "\nEnd of Project Gutenberg Etext of A Test Book\n"
    docs, rej = read(one(tmp_path, "old.txt", text.replace("\n", "\r\n").encode("latin-1")))
    assert len(rej) == 0 and docs["source"].to_list() == ["book"]
    t = docs["text"][0]
    assert t.startswith("CHAPTER I") and t.endswith("he left at once.")
    assert "Gutenberg" not in t and "\r" not in t and "Déjà vu" in t
    meta = json.loads(docs["meta"][0])
    assert meta["gutenberg"] is True and meta["gutenberg_style"] == "old"
    assert meta["encoding"] in ("cp1252", "latin-1")


def test_book_modern_markers_gz(tmp_path):
    text = (
        "\ufeffThe Project Gutenberg EBook of Test, by Someone\n\nThis eBook is for the use of anyone\n\n"
        "Title: Test Book\n\nRelease Date: May 1, 2004 [EBook #12345]\n\n"
        "*** START OF THIS PROJECT GUTENBERG EBOOK\nTEST BOOK ***\n\n\n\nProduced by Jane Doe and the Online "
        "Distributed Proofreading Team at http://www.pgdp.net\n\n\n"
        + BODY
        + "\n\nEnd of the Project Gutenberg EBook of Test, by Someone\n\n*** END OF THIS PROJECT GUTENBERG "
        "EBOOK TEST BOOK ***\n\n***** This file should be named 12345.txt *****\n\n"
        "*** START: FULL LICENSE ***\nTHE FULL PROJECT GUTENBERG LICENSE\n"
    )
    docs, _ = read(one(tmp_path, "pg12345.txt.gz", gzip.compress(text.encode("utf-8"))))
    t = docs["text"][0]
    assert t.startswith("CHAPTER I") and t.endswith("he left at once.") and "Gutenberg" not in t
    meta = json.loads(docs["meta"][0])
    assert meta == {
        "encoding": "utf-8",
        "gutenberg": True,
        "gutenberg_style": "modern",
        "title": "Test Book",
        "gutenberg_id": 12345,
    }


def test_book_without_markers_and_binary(tmp_path):
    docs, _ = read(one(tmp_path, "notes.txt", "Line one\r\nLine two\rLine three\n"))
    assert docs["text"].to_list() == ["Line one\nLine two\nLine three\n"]
    assert json.loads(docs["meta"][0])["gutenberg"] is False
    docs, rej = read(one(tmp_path, "fake.txt", b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4))
    assert len(docs) == 0 and rej["reason"].to_list() == ["binary content"]
    docs, rej = read(one(tmp_path, "noise.txt", bytes((i * 7 + 3) % 32 for i in range(4000))))
    assert len(docs) == 0 and rej["reason"].to_list() == ["binary content"]


# --- code ---------------------------------------------------------------------------------------


def test_code_folder(tmp_path):
    repo = tmp_path / "myrepo"
    (repo / "src").mkdir(parents=True)
    (repo / "src" / "app.py").write_text("# @generated by protoc, do not edit\nimport os\n\nprint(os.name)\n")
    (repo / "src" / "lib.min.js").write_text("var a=1;" * 200)
    (repo / "bad.py").write_bytes(b"\x00\x01\x02binary" * 100)
    (repo / "run").write_text("#!/usr/bin/env python3\nprint('hi')\n")
    (repo / "package-lock.json").write_text('{"lockfileVersion": 3}\n')
    (repo / "Makefile").write_text("all:\n\techo hi\n")
    files, _ = discover([(None, str(repo))])
    by = {f.display: f for f in files}
    assert all(f.fmt == "code" for f in files), [(f.display, f.fmt) for f in files]
    out = {d: read(f) for d, f in by.items()}

    docs, _ = out["myrepo/src/app.py"]
    m = json.loads(docs["meta"][0])
    assert docs["source"][0] == "code" and m["language"] == "python" and m["path"] == "src/app.py"
    assert m["generated"] is True and m["minified"] is False and m["lockfile"] is False
    assert json.loads(out["myrepo/src/lib.min.js"][0]["meta"][0])["minified"] is True
    assert json.loads(out["myrepo/run"][0]["meta"][0])["language"] == "python"
    assert json.loads(out["myrepo/package-lock.json"][0]["meta"][0])["lockfile"] is True
    assert json.loads(out["myrepo/Makefile"][0]["meta"][0])["language"] == "makefile"
    docs, rej = out["myrepo/bad.py"]
    assert len(docs) == 0 and rej["reason"].to_list() == ["binary file"] and rej["source"][0] == "code"


def test_code_flags_and_license(tmp_path):
    repo = tmp_path / "proj"
    (repo / "src").mkdir(parents=True)
    (repo / "vendor" / "dep").mkdir(parents=True)
    (repo / "LICENSE").write_text("MIT License\n\nPermission is hereby granted, free of charge, to any person\n")
    (repo / "src" / "parser.c").write_text('#include "tree_sitter/parser.h"\n\nint x;\n')
    (repo / "src" / "app.min.js.map").write_text('{"version":3,"sources":["app.js"],"mappings":"AAAA"}')
    (repo / "src" / "data.json").write_text("[" + ",".join(str(i * 1.5) for i in range(20000)) + "]")
    (repo / "vendor" / "dep" / "x.go").write_text("package dep\n")
    (repo / "go.sum").write_text("github.com/a/b v1.0.0 h1:abc=\n")
    (repo / "jquery.min.js").write_text("/*! jQuery */\n!function(e,t){" + "var a=e;" * 100 + "}\n")
    files, _ = discover([(None, str(repo))])
    metas = {}
    for f in files:
        docs, _ = read(f)
        if len(docs):
            metas[f.display] = json.loads(docs["meta"][0])
    assert metas["proj/src/parser.c"]["generated"] is True
    assert metas["proj/src/parser.c"]["license"] == "MIT"
    assert metas["proj/src/app.min.js.map"]["source_map"] is True
    assert metas["proj/src/data.json"]["data_like"] is True
    assert metas["proj/vendor/dep/x.go"]["vendored"] is True and metas["proj/vendor/dep/x.go"]["language"] == "go"
    assert metas["proj/go.sum"]["lockfile"] is True
    assert metas["proj/jquery.min.js"]["minified"] is True
    assert metas["proj/src/parser.c"]["vendored"] is False and metas["proj/src/parser.c"]["data_like"] is False


def test_shared_code_flags(shared_data, tmp_path):
    """Real files: minified jQuery, source maps, lock files, the tree-sitter parser.c, licences."""
    recs = [json.loads(line) for line in gzip.open(shared_data / "code" / "code_files.jsonl.gz", "rt")]
    want = {"jquery/jquery-dist", "tree-sitter/tree-sitter-json", "spf13/cobra"}
    for r in recs:
        if r["repo"] in want:
            p = tmp_path / r["repo"].replace("/", "__") / r["path"]
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(r["content"], encoding="utf-8")
    for repo in want:  # a LICENSE file in the tree, as a real checkout has
        (tmp_path / repo.replace("/", "__") / "LICENSE").write_text(
            "Permission is hereby granted, free of charge, to any person"
            if repo != "spf13/cobra"
            else "Apache License\nVersion 2.0, January 2004"
        )
    files, _ = discover([(None, str(tmp_path))])
    metas = {}
    for f in files:
        docs, _ = read(f)
        if len(docs):
            metas[f.display.split("/", 1)[1]] = json.loads(docs["meta"][0])
    mins = [k for k in metas if k.endswith(".min.js")]
    assert mins and all(metas[k]["minified"] for k in mins)
    maps = [k for k in metas if k.endswith(".min.map")]
    assert maps and all(metas[k]["source_map"] for k in maps)
    assert metas["tree-sitter__tree-sitter-json/src/parser.c"]["generated"] is True
    assert metas["spf13__cobra/go.sum"]["lockfile"] is True
    assert metas["spf13__cobra/go.sum"]["license"] == "Apache-2.0"
    assert metas["tree-sitter__tree-sitter-json/src/parser.c"]["license"] == "MIT"


# --- limits and errors --------------------------------------------------------------------------


def test_file_too_large_not_read(tmp_path):
    f = one(tmp_path, "big.jsonl", b'{"text": "x"}\n')
    big = InputFile(path=f.path, display=f.display, fmt=f.fmt, source=None, size=f.size)
    (tmp_path / "big.jsonl").write_bytes(b" " * (1 << 20) + b'{"text": "x"}\n')
    docs, rej = read(big, IngestConfig(max_file_mb=1))
    assert len(docs) == 0 and rej["reason"][0].startswith("file too large")


def test_unreadable_file(tmp_path):
    f = InputFile(path=tmp_path / "gone.jsonl", display="gone.jsonl", fmt="jsonl", source=None, size=10)
    docs, rej = read(f)
    assert len(docs) == 0 and rej["reason"][0].startswith("unreadable")


def test_wat_rejected(tmp_path):
    docs, rej = read(one(tmp_path, "x.warc.wat.gz", gzip.compress(b"WARC/1.0\r\n")))
    assert len(docs) == 0 and rej["reason"].to_list() == ["unsupported: WAT metadata"]


def test_config_forbids_extra():
    with pytest.raises(ValueError):
        IngestConfig(nope=1)  # type: ignore[call-arg]
    assert IngestConfig().max_file_mb == 512 and IngestConfig().min_chars == 1


# --- shared real data ---------------------------------------------------------------------------


def test_shared_warc_files(shared_data):
    files, warnings = discover([(None, str(shared_data / "warc"))])
    assert files
    got = {}
    for f in files:
        docs, rej = read(f)
        got[f.path.name] = (docs, rej)
    if "resiliparse_clipped.warc.gz" in got:
        docs, rej = got["resiliparse_clipped.warc.gz"]
        assert len(rej) == 1 and rej["reason"][0].startswith("truncated")
    if "warcio_example-iana.org-chunked.warc" in got:
        docs, _ = got["warcio_example-iana.org-chunked.warc"]
        assert len(docs) == 1 and "DNS Root Zone" in docs["text"][0]
    if "warcio_example.arc.gz" in got:
        assert len(got["warcio_example.arc.gz"][0]) == 1
    if "warcio_example.warc.gz" in got:  # response + revisit: the revisit is no document
        docs, rej = got["warcio_example.warc.gz"]
        assert len(docs) == 1 and len(rej) == 0
    if "commoncrawl_whirlwind.warc.wat.gz" in got:
        assert got["commoncrawl_whirlwind.warc.wat.gz"][1]["reason"].to_list() == ["unsupported: WAT metadata"]
    if "commoncrawl_whirlwind.warc.wet.gz" in got:
        docs, _ = got["commoncrawl_whirlwind.warc.wet.gz"]
        assert len(docs) == 1 and docs["url"][0].startswith("http")
    total = sum(len(d) for d, _ in got.values())
    assert total > 50


def test_shared_books_stripped(shared_data):
    books = sorted((shared_data / "books").glob("*.txt.gz"))
    if not books:
        pytest.skip("no books")
    files, _ = discover([(None, str(p)) for p in books])
    assert len(files) == len(books)
    licence = re.compile(
        r"(?-i:START OF THE PROJECT|START OF THIS PROJECT)|\*\*\* ?END OF|SMALL PRINT|Gutenberg-tm|"
        r"Gutenberg Literary Archive|LIMITED RIGHT OF REPLACEMENT|Project Gutenberg License|"
        r"www\.gutenberg\.org/license|donations? to Project Gutenberg",
        re.I,
    )
    bodies = {}
    for f in files:
        docs, rej = read(f)
        assert len(docs) >= 1 and len(rej) == 0, f.display
        assert docs["group_id"].n_unique() == 1, f.display
        assert (docs["text"].str.len_chars() <= IngestConfig().book_max_chars).all(), f.display
        t = "\n\n".join(docs["text"].to_list())
        assert len(t) > 1000, f.display
        assert json.loads(docs["meta"][0])["gutenberg"] is True, f.display
        assert not licence.search(t), (f.display, licence.search(t))
        cut = int(len(t) * 0.02)
        pos = 0
        for line in t.split("\n"):
            if "project gutenberg" in line.lower():
                assert pos <= cut, (f.display, line)
            pos += len(line) + 1
        bodies[f.path.name] = " ".join(t.split())
    # The first words of the body survive (old-style header: pg4, pg19; modern: pg11, pg1342).
    firsts = {
        "pg4.txt.gz": "Four score and seven years ago",
        "pg11.txt.gz": "Alice was beginning to get very tired",
        "pg1342.txt.gz": "It is a truth universally acknowledged",
        "pg19.txt.gz": "Should you ask me, whence these stories?",
    }
    for name, words in firsts.items():
        if name in bodies:
            assert words in bodies[name][:20000], name
    # Latin-1 books decode to the right letters, with no mojibake or replacement characters.
    if "pg7166.txt.gz" in bodies:
        assert "A matinée, eh?" in bodies["pg7166.txt.gz"] and "\ufffd" not in bodies["pg7166.txt.gz"]
        assert "Ã" not in bodies["pg7166.txt.gz"]


def test_html_declared_language_and_date(tmp_path):
    html = page(
        head='<meta property="article:published_time" content="2019-10-16T10:00:00Z">',
        body="<p>" + "Die alte Mühle am Fluss ist heute ein kleines Museum für die ganze Familie. " * 5 + "</p>",
    ).replace("<html>", '<html lang="de-DE">')
    docs, _ = read(one(tmp_path, "p.html", html))
    meta = json.loads(docs["meta"][0])
    assert meta["html_lang"] == "de-de" and meta["date"] == "2019-10-16T10:00:00Z" and meta["title"]


def test_book_split_into_parts(tmp_path):
    paras = [f"Paragraph {i} " + "word " * 200 for i in range(300)]
    body = "\n\n".join(paras)
    start, end = "*** START OF THE PROJECT GUTENBERG EBOOK X ***", "*** END OF THE PROJECT GUTENBERG EBOOK X ***"
    text = f"{start}\n\n{body}\n\n{end}\n"
    f = one(tmp_path, "long.txt", text.encode())
    docs, rej = read_file(f, IngestConfig(book_max_chars=50_000))
    assert len(rej) == 0 and len(docs) > 1
    assert docs["group_id"].n_unique() == 1 and docs["id"].n_unique() == len(docs)
    assert (docs["text"].str.len_chars() <= 50_000).all()
    assert docs["text"][0].startswith("Paragraph 0 ") and docs["text"][-1].rstrip().endswith("word")
    # Paragraphs are never cut: every part starts at one.
    assert all(t.startswith("Paragraph ") for t in docs["text"].to_list())
    assert sum(len(t) for t in docs["text"].to_list()) >= len(body) - 2 * len(docs)
    whole, _ = read_file(f, IngestConfig(book_max_chars=0))
    assert len(whole) == 1 and whole["group_id"][0] == whole["id"][0] == docs["group_id"][0]


# --- encodings, BOMs, blank files ---------------------------------------------------------------

PROSE = "The quiet teacher borrowed a basket of apples.\nShe walked home past the mill.\n"


@pytest.mark.parametrize(
    ("encoding", "bom", "codec"),
    [
        ("utf-16", b"", "utf-16-le"),  # Python writes the BOM itself (little-endian here)
        ("utf-16-be", b"\xfe\xff", "utf-16-be"),
        ("utf-32", b"", "utf-32-le"),
        ("utf-32-be", b"\x00\x00\xfe\xff", "utf-32-be"),
        ("utf-16-le", b"", "utf-16-le"),  # no BOM: plainly UTF-16 (every other byte NUL)
        ("utf-16-be", b"", "utf-16-be"),
    ],
)
def test_wide_unicode_text_and_code(tmp_path, encoding, bom, codec):
    data = bom + (PROSE + "Café crème, naïve façade — “quoted”.\n").encode(encoding)
    for name in ("book.txt", "script.ps1"):
        docs, rej = read(one(tmp_path, name, data))
        assert len(rej) == 0 and docs["text"][0].startswith("The quiet teacher"), (name, rej["reason"].to_list())
        assert "“quoted”" in docs["text"][0] and "\ufeff" not in docs["text"][0]
        assert json.loads(docs["meta"][0])["encoding"] == codec


def test_wide_unicode_binary_and_nul_runs_stay_binary(tmp_path):
    # A UTF-16 BOM in front of binary data, and NUL runs filling both bytes of each pair: still binary.
    docs, rej = read(one(tmp_path, "a.txt", b"\xff\xfe" + bytes(range(32)) * 200))
    assert len(docs) == 0 and rej["reason"].to_list() == ["binary content"]
    docs, rej = read(one(tmp_path, "b.txt", PROSE.encode() + b"\x00" * 4000))
    assert len(docs) == 0 and rej["reason"].to_list() == ["binary content"]
    docs, rej = read(one(tmp_path, "c.py", b"\xfe\xff" + bytes(range(32)) * 200))
    assert len(docs) == 0 and rej["reason"].to_list() == ["binary file"]


def test_html_utf16_bom_wins_over_declared_charset(tmp_path):
    html = page(head='<meta charset="iso-8859-1">', title="Café")
    docs, rej = read(one(tmp_path, "p.html", html.encode("utf-16")))
    assert len(rej) == 0 and "river valley" in docs["text"][0]
    meta = json.loads(docs["meta"][0])
    assert meta["encoding"] == "utf-16-le (bom)" and meta["title"] == "Café"


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_jsonl_utf8_bom(tmp_path, suffix):
    lines = [json.dumps({"text": t}).encode() for t in ("first line", "second line", "third line")]
    data = b"\xef\xbb\xbf" + lines[0] + b"\n" + lines[1] + b"\n\xef\xbb\xbf" + lines[2] + b"\n"  # as `cat`
    docs, rej = read(one(tmp_path, f"bom.jsonl{suffix}", gzip.compress(data) if suffix else data))
    assert len(rej) == 0 and docs["text"].to_list() == ["first line", "second line", "third line"]
    assert docs["path"].to_list() == [f"bom.jsonl{suffix}#{i}" for i in (1, 2, 3)]


@pytest.mark.parametrize(
    ("name", "data"), [("blank.jsonl", b"\n   \n\t\n"), ("blank.jsonl.gz", gzip.compress(b"\n\n"))]
)
def test_jsonl_of_blank_lines_gives_one_reject(tmp_path, name, data):
    docs, rej = read(one(tmp_path, name, data))
    assert len(docs) == 0 and rej["reason"].to_list() == ["no records: only blank lines"]
    assert rej["path"].to_list() == [name] and rej["id"].to_list() == [doc_id(name)]


def test_whitespace_only_files_give_one_reject(tmp_path):
    for name, data in (("blank.txt", b"   \n\t\n   \n"), ("blank.html", b"  \n  "), ("blank.py", b"\n\n")):
        docs, rej = read(one(tmp_path, name, data))
        assert len(docs) == 0 and rej["path"].to_list() == [name], name


def test_warc_without_content_records_gives_one_reject(tmp_path):
    path = tmp_path / "info.warc.gz"
    with open(path, "wb") as fh:
        w = WARCWriter(fh, gzip=True)
        w.write_record(w.create_warcinfo_record("info.warc.gz", {"software": "test"}))
    files, _ = discover([(None, str(path))])
    docs, rej = read(files[0])
    assert len(docs) == 0 and rej["reason"].to_list() == ["no records: no response, resource or conversion record"]
