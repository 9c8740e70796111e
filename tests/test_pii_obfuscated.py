"""Obfuscated and encoded PII: "name [at] host [dot] com" and its kin, percent-encoded addresses and phone numbers,
phone numbers broken across a line; and the look-alikes in prose and code that must stay as they are."""

from __future__ import annotations

import json

import polars as pl
import pytest

from pipeline.pii.config import PiiConfig
from pipeline.pii.find import find_pii
from pipeline.pii.recognizers import VIEW_TRIGGERS, view_of
from pipeline.pii.stage import remove_pii


def _redact(text: str, cfg: PiiConfig, source: str = "web") -> tuple[str, dict[str, int]]:
    """``text`` after the ``pii`` stage, as a one-document batch, and its findings per entity type."""
    df = pl.DataFrame({"id": ["d"], "text": [text], "source": [source]})
    res = remove_pii(df, cfg)
    assert res.kept.height == 1
    return res.kept["text"][0], json.loads(res.kept["pii_types"][0])


def _found(text: str, cfg: PiiConfig, source: str = "web") -> list[tuple[str, str]]:
    """(entity type, value as written) of what the stage finds in ``text``, in text order."""
    (found,) = find_pii([text], [source], cfg)
    return [(r.entity_type, text[r.start : r.end]) for r in found]


EMAILS = [
    "Write to jane [at] example [dot] com for the slides.",
    "Write to jane (at) example (dot) com for the slides.",
    "Write to jane{at}example{dot}com for the slides.",
    "Write to jane at example dot org for the slides.",
    "Write to JANE AT EXAMPLE DOT ORG for the slides.",
    "Write to jane.doe [at] example.com for the slides.",
    "Write to jane [at] mail [dot] example [dot] co [dot] uk for the slides.",
    "Write to john dot smith at gmail dot com for the slides.",
    "Write to j.smith[at]uni-heidelberg[dot]de for the slides.",
    "Write to jane  at   example  dot  com for the slides.",
    "Unsubscribe: mailto:jane.doe%40example.com",
    "Unsubscribe: mailto:jane%2Bnews%40example.com?subject=stop",
]


@pytest.mark.parametrize("text", EMAILS)
def test_obfuscated_addresses_are_replaced(text: str) -> None:
    out, counts = _redact(text, PiiConfig())
    assert counts == {"EMAIL_ADDRESS": 1}, out
    assert "jane" not in out.lower() and "smith" not in out
    assert "<EMAIL>" in out


PHONES = [
    ("Call +1 415\n555 0134 after six.", "+1 415\n555 0134"),
    ("Call (415) 555-\n0134 after six.", "(415) 555-\n0134"),
    ("Call (415) 555-\r\n0134 after six.", "(415) 555-\r\n0134"),
    ("Call 415-555-\n0134 after six.", "415-555-\n0134"),
    ("Ruf an: +49 30\n901820 werktags.", "+49 30\n901820"),
    ("https://example.com/contact?tel=%2B1%20415%20555%200134&x=1", "%2B1%20415%20555%200134"),
    ("https://example.com/contact?tel=+1%20415%20555%200134&x=1", "+1%20415%20555%200134"),
    ("https://example.com/contact?phone=415+555+0134&x=1", "415+555+0134"),
]


@pytest.mark.parametrize(("text", "value"), PHONES, ids=[p[1] for p in PHONES])
def test_broken_and_encoded_phones_are_replaced(text: str, value: str) -> None:
    (found,) = [v for e, v in _found(text, PiiConfig()) if e == "PHONE_NUMBER"]
    assert found.endswith(value[-4:]) and value[:3] in found
    out, _ = _redact(text, PiiConfig())
    assert value not in out and "0134" not in out and "<PHONE>" in out


LOOKALIKES = [
    ("book", "Look at him dot the i's and cross the t's."),
    ("book", "We agreed to meet at noon by the old mill."),
    ("book", "He was at home dot com was not yet a word."),
    ("book", "They met at the dot com boom and never spoke of it."),
    ("book", "She stared at it dot by dot until the picture came."),
    ("book", "Jane at example.com? No, she was at the bakery."),
    ("book", "The price at one dot five per cent was agreed."),
    ("book", "Tea (at) four, dinner [at] eight."),
    ("book", "I was there (at) least twice dot dot dot."),
    ("book", "Page 415-\n555 of the ledger, and line (12) 3\n4567."),
    ("book", "In (1850) 12-\n1300 were counted."),
    ("book", "Verses 12-14-\n1623 edition, and 3.14.\n159 265 358."),
    ("code", "for (i = 0; i < n; ++i) y = x.at(i) + v.at(j);"),
    ("code", "auto v = m.at(key); // at(), [at], {at} are fine here"),
    ("code", 'printf("%2d%2d\\n", a, b); s = "100%20";'),
    ("code", "total = 1234+5678+9012\nq = a=1+2+3"),
    ("code", "x = (415) - \n555 + 0134"),
    ("code", "url = base + '/static/icon%402x.png'"),
    ("code", "sizes = [1024, 2048,\n4096, 8192]"),
    ("web", "Buy at store dot com today, at least at Store Dot Com."),
    ("web", "Prices at 12.99 dot com style deals."),
]


@pytest.mark.parametrize(("source", "text"), LOOKALIKES, ids=[t[:28] for _, t in LOOKALIKES])
def test_lookalikes_survive(source: str, text: str) -> None:
    df = pl.DataFrame({"id": ["d"], "text": [text], "source": [source], "url": [None], "path": ["p"], "meta": ["{}"]})
    res = remove_pii(df.with_columns(pl.col("url").cast(pl.String)), PiiConfig())
    assert res.kept["text"][0] == text, _found(text, PiiConfig(), source)


def test_findings_point_at_the_text_as_written() -> None:
    text = "A: jane [at] example [dot] com, B: mailto:bob%40example.org, C: +1 415\n555 0134."
    assert [v for _, v in _found(text, PiiConfig())] == [
        "jane [at] example [dot] com",
        "bob%40example.org",
        "+1 415\n555 0134",
    ]


def test_hash_reads_the_plain_form() -> None:
    # "hash" gives one token per address however it was written; "mask" keeps the written shape
    cfg = PiiConfig(policy="hash")
    tokens = {_redact(t, cfg)[0] for t in ("jane@example.com", "jane [at] example [dot] com", "jane%40example.com")}
    assert len(tokens) == 1 and next(iter(tokens)).startswith("<EMAIL:")
    masked, _ = _redact("x jane [at] example [dot] com y", PiiConfig(policy="mask"))
    assert masked == "x **** [**] ******* [***] *** y"


def test_redaction_is_idempotent() -> None:
    # a second pass (rejected rows redacted twice, the report redacting redacted text) changes nothing
    text = "Mail jane [at] example [dot] com, call (415) 555-0134 or +44 20 7946 0958; card 4111 1111 1111 1111."
    for cfg in (PiiConfig(), PiiConfig(policy="hash"), PiiConfig(policy="mask")):
        once, _ = _redact(text, cfg)
        assert _redact(once, cfg) == (once, {})


def test_views_map_back_to_the_original() -> None:
    text = "pre x%40example.com mid a [at] b [dot] org post"
    view, view_map = view_of(text, list(VIEW_TRIGGERS))  # type: ignore[misc]
    assert view == "pre x@example.com mid a@b.org post"
    for original, plain in (("x%40example.com", "x@example.com"), ("a [at] b [dot] org", "a@b.org")):
        start = view.index(plain)
        assert text[view_map.original(start) : view_map.original(start + len(plain))] == original
    assert view_of("nothing to rewrite here", list(VIEW_TRIGGERS)) is None


def test_spelled_forms_need_consistent_case_and_a_known_domain() -> None:
    texts = ("jane AT example dot com", "jane at example DOT com", "jane at example dot xyz", "jane at example.com")
    for text in texts:
        assert _redact(text, PiiConfig())[1] == {}, text


def test_an_address_used_as_a_file_name_is_found():
    import polars as pl

    from pipeline.pii.columns import redact_columns
    from pipeline.pii.config import PiiConfig

    df = pl.DataFrame({"source": ["other", "code"], "path": ["in/ann.smith@example.com.jsonl#3", "pkg/obj.at.py"]})
    assert redact_columns(df, PiiConfig())[0]["path"].to_list() == ["in/<EMAIL>.jsonl#3", "pkg/obj.at.py"]
