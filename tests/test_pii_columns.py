"""PII in every column: url, path, domain, metadata JSON (nested), rejected rows; counts over all columns;
planted records through the real JSONL reader; no false positives on real metadata and URLs."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import polars as pl

from pipeline.ingest import discover, read_file
from pipeline.pii.columns import redact_columns, redact_rejected
from pipeline.pii.config import PiiConfig
from pipeline.pii.stage import remove_pii
from pipeline.schema import REJECTED_SCHEMA, to_rejected
from tests.planted_pii import planted_jsonl_records, planted_leaks

URL = "https://deploy:Tr0ub4dor-x9@git.example.org/contact?email=jane.doe%40example.com&tel=%2B1%20415%20555%200134"
META = {
    "title": "Contact bob@example.org",
    "author_email": "anna@gmail.com",
    "ip": "8.8.4.4",
    "url_raw": URL,
    "nested": {"people": [{"phone": 4155550134, "name": "Ann"}, "call (415) 555-0199"], "count": 3, "ok": True},
    "password": "Xk9.mQ2pLw",
    "encoding": "utf-8",
}
RAW = [
    "jane.doe", "Tr0ub4dor", "555 0134", "555%200134", "bob@example.org", "anna@gmail.com", "8.8.4.4",
    "4155550134", "555-0199", "Xk9.mQ2pLw", "carol@example.net", "198.51.100.23",
]  # fmt: skip


def _frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "id": ["carol@example.net", "d1", "d2"],
            "text": ["Mail carol [at] example [dot] net.", "nothing here", "Plain words."],
            "source": ["web", "web", "code"],
            "url": [URL, None, "https://example.com/a?phone=4155550134"],
            "path": ["in/carol@example.net/a.html", "in/b.html", "repo/src/main.py"],
            "domain": ["198.51.100.23", "example.com", "example.com"],
            "meta": [json.dumps(META), "{}", "not json: 203.0.113.9"],
            "group_id": ["carol@example.net", "d1", "d2"],
            "lang": ["en", "en", "en"],
            "lang_score": [0.9, 0.8, 0.7],
            "notes": ["reach me on +44 20 7946 0958", None, "fine"],
        }
    )


def _strings(df: pl.DataFrame, skip: tuple[str, ...] = ("id", "group_id")) -> str:
    return "\n".join(str(v) for c in df.columns if c not in skip for v in df[c].to_list())


def test_every_text_column_is_redacted() -> None:
    df = _frame()
    out, counts = redact_columns(df, PiiConfig())
    assert out.columns == df.columns and out.schema == df.schema and out.height == df.height
    blob = _strings(out)
    assert [v for v in RAW if v in blob] == []
    assert out["url"][0] == "https://<CREDENTIALS>@git.example.org/contact?email=<EMAIL>&tel=<PHONE>"
    assert out["url"][2] == "https://example.com/a?phone=<PHONE>"  # a code row's URL reads as prose
    assert out["path"][0] == "in/<EMAIL>/a.html" and out["domain"][0] == "<IP>"
    assert out["text"][0] == "Mail <EMAIL>." and out["notes"][0] == "reach me on <PHONE>"
    assert out["meta"][2] == "not json: <IP>"  # not JSON: scanned as a plain string
    # identities and labels are never touched (ids are hashes in a run; here they hold an address on purpose)
    assert out["id"].to_list() == df["id"].to_list() and out["group_id"].to_list() == df["group_id"].to_list()
    assert counts.to_list() == [16, 0, 2]


def test_meta_stays_valid_json_with_every_value_redacted() -> None:
    out, _ = redact_columns(_frame(), PiiConfig())
    meta = json.loads(out["meta"][0])
    assert list(meta) == list(META)  # keys and their order kept
    assert meta["title"] == "Contact <EMAIL>" and meta["author_email"] == "<EMAIL>" and meta["ip"] == "<IP>"
    assert meta["url_raw"] == "https://<CREDENTIALS>@git.example.org/contact?email=<EMAIL>&tel=<PHONE>"
    assert meta["nested"]["people"] == [{"phone": "<PHONE>", "name": "Ann"}, "call <PHONE>"]
    assert meta["nested"]["count"] == 3 and meta["nested"]["ok"] is True and meta["encoding"] == "utf-8"
    assert meta["password"] == "<PASSWORD>"  # read with its key, like "password": "..." in a document
    assert out["meta"][1] == "{}"  # rows without findings keep their bytes


def test_sources_outside_apply_to_sources_are_left_alone() -> None:
    df = _frame()
    out, counts = redact_columns(df, PiiConfig(apply_to_sources=["code"]))
    assert out.row(0) == df.row(0) and counts[0] == 0
    assert out["url"][2].endswith("phone=<PHONE>")


def test_remove_pii_counts_findings_in_every_column() -> None:
    res = remove_pii(_frame(), PiiConfig())
    assert res.kept["pii_count"].to_list() == [16, 0, 2]
    types = json.loads(res.kept["pii_types"][0])
    assert types == {"EMAIL_ADDRESS": 6, "IP_ADDRESS": 2, "PASSWORD": 1, "PHONE_NUMBER": 5, "URL_CREDENTIALS": 2}
    assert res.stats["by_column"] == {"domain": 1, "meta": 10, "notes": 1, "path": 1, "text": 1, "url": 4}
    assert res.stats["docs_with_pii"] == 2 and res.stats["docs_scanned"] == 2
    assert sum(res.stats["counts"].values()) == 18


def test_drop_policy_counts_every_column() -> None:
    # the only e-mail of d1 sits in its metadata: the document still counts as holding one
    df = _frame().with_columns(pl.Series("meta", ["{}", '{"author_email": "anna@gmail.com"}', "{}"]))
    res = remove_pii(df, PiiConfig(policies={"EMAIL_ADDRESS": "drop"}, drop_above=0))
    assert res.kept["id"].to_list() == ["d2"]
    assert res.rejected["id"].to_list() == ["carol@example.net", "d1"]
    assert res.rejected.schema == pl.Schema(REJECTED_SCHEMA)
    assert [v for v in RAW if v in _strings(res.rejected, ("id",))] == []


def _rejected() -> pl.DataFrame:
    rows = pl.DataFrame(
        {
            "id": ["r1", "r2", "r3"],
            "source": ["web", None, "book"],
            "url": [URL, None, None],
            "path": ["crawl/a.warc.gz#3", "in/carol@example.net/a.txt", "books/pg1.txt"],
            "text": ["Call (415) 555-0134 or mail jane [at] example [dot] com.", None, "Clean prose."],
            "reason": ["gopher_stop_words", "unreadable: in/carol@example.net/a.txt", "exact_duplicate"],
            "duplicate_of": [None, None, "r0"],
            "detail": ['{"stat": 0.1, "host": "8.8.4.4"}', None, '{"match": "bob@example.org"}'],
        }
    )
    return pl.concat([to_rejected(rows.head(2), "filter"), to_rejected(rows.tail(1), "dedup")])


def test_redact_rejected_keeps_rows_and_ids() -> None:
    rej = _rejected()
    out = redact_rejected(rej, PiiConfig())
    assert out.schema == rej.schema and out["id"].to_list() == rej["id"].to_list()
    assert out["duplicate_of"].to_list() == rej["duplicate_of"].to_list()
    assert out["text"][0] == "Call <PHONE> or mail <EMAIL>." and out["text"][1] is None
    assert out["reason"][1] == "unreadable: in/<EMAIL>/a.txt"  # a row without a source is read as "other"
    assert json.loads(out["detail"][0]) == {"stat": 0.1, "host": "<IP>"}
    assert json.loads(out["detail"][2]) == {"match": "<EMAIL>"}
    assert [v for v in RAW if v in _strings(out, ("id",))] == []


def test_redact_rejected_replaces_drop_types_instead_of_dropping() -> None:
    out = redact_rejected(_rejected(), PiiConfig(policy="drop"))
    assert out.height == 3 and out["text"][0] == "Call <PHONE> or mail <EMAIL>."
    assert redact_rejected(out, PiiConfig(policy="drop")).equals(out)  # a second pass changes nothing


def test_empty_and_textless_frames() -> None:
    empty = pl.DataFrame(schema=REJECTED_SCHEMA)
    assert redact_rejected(empty, PiiConfig()).equals(empty)
    only_ids = pl.DataFrame({"id": ["a"], "n": [1]})
    out, counts = redact_columns(only_ids, PiiConfig())
    assert out.equals(only_ids) and counts.to_list() == [0]


def test_planted_records_through_the_jsonl_reader(tmp_path: Path) -> None:
    """Records with PII in the URL query (percent-encoded), in the credentials of the URL (``meta.url_raw``), in
    fields kept in ``meta`` and obfuscated in the text: after the stage no planted value is left anywhere."""
    records, planted = planted_jsonl_records(random.Random(5), 12)
    path = tmp_path / "planted.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    files, _ = discover([(None, str(path))])
    docs, _ = read_file(files[0])
    assert docs.height == len(records)
    before = _strings(docs, ("id",))
    assert set(planted_leaks(before, planted)) == set(planted)  # the check sees every value before the stage
    res = remove_pii(docs, PiiConfig())
    assert res.kept.height == len(records)
    assert planted_leaks(_strings(res.kept, ("id",)), planted) == []
    assert min(res.kept["pii_count"].to_list()) >= 9
    for meta in res.kept["meta"]:
        json.loads(meta)


# Genuine contact details in the shared web pages' metadata (trafilatura's expected snippets).
_GENUINE_META = {
    "d.toelle[at]rechtambild.de", "suivi.reformes.blanquer@gmail.com", "info@mueritzurlauber.de", "039931 51438",
    "+39 389 1976362 info@schlosswirtjuval.it",
}  # fmt: skip


def _real_metadata(data: Path) -> pl.DataFrame:
    """url, path and meta as ingest keeps them, from the shared data's real records: the books' manifest, the code
    files' repository metadata with their GitHub URLs, the web pages' URLs and metadata."""
    rows = []
    for line in (data / "books" / "manifest.jsonl").read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        rows.append(("book", None, f"books/{r['file']}", r))
    with gzip.open(data / "code" / "code_files.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            r.pop("content")
            rows.append(("code", f"https://github.com/{r['repo']}/blob/{r['commit']}/{r['path']}", r["path"], r))
    for p in sorted((data / "web").glob("*.jsonl.gz")):
        with gzip.open(p, "rt", encoding="utf-8") as f:
            for i, line in enumerate(f):
                r = json.loads(line)
                meta = {k: v for k, v in r.items() if k not in ("html", "expected_html", "expected_text", "url", "id")}
                rows.append(("web", r.get("url"), f"{p.name}#{i}", meta))
    return pl.DataFrame(
        {
            "id": [str(i) for i in range(len(rows))],
            "source": [r[0] for r in rows],
            "url": [r[1] for r in rows],
            "path": [r[2] for r in rows],
            "meta": [json.dumps(r[3], ensure_ascii=False) for r in rows],
        },
        schema_overrides={"url": pl.String},
    )


def test_real_urls_and_metadata_have_no_false_positives(shared_data: Path) -> None:
    df = _real_metadata(shared_data)
    out, counts = redact_columns(df, PiiConfig())
    assert out["url"].equals(df["url"]) and out["path"].equals(df["path"])
    changed = []
    for before, after in zip(df["meta"], out["meta"], strict=True):
        if before != after:
            old, new = json.loads(before), json.loads(after)
            for key in old:
                for a, b in zip(old[key] if isinstance(old[key], list) else [old[key]],
                                new[key] if isinstance(new[key], list) else [new[key]], strict=True):  # fmt: skip
                    if a != b:
                        changed.append(a)
    assert set(changed) == _GENUINE_META, set(changed) ^ _GENUINE_META
    assert sum(counts) == 6  # one of them holds a phone number and an address


def test_json_escapes_do_not_hide_values() -> None:
    # "\n" inside a JSON string, and "\uXXXX" escapes (a producer's ensure_ascii), are read decoded
    meta = [
        json.dumps({"note": "Office line +1 415\n555 0134 until six."}),
        json.dumps({"note": "Call ＋４４ ２０ ７９４６ ０９５８ tonight."}, ensure_ascii=True),
    ]
    df = pl.DataFrame({"id": ["a", "b"], "source": ["web", "web"], "meta": meta})
    out, counts = redact_columns(df, PiiConfig())
    assert [json.loads(m)["note"] for m in out["meta"]] == ["Office line <PHONE> until six.", "Call <PHONE> tonight."]
    assert counts.to_list() == [1, 1]
