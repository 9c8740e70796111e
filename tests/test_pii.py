"""PII stage: planted values are replaced, look-alikes survive, presidio only sees candidate documents."""

from __future__ import annotations

import gzip
import json
import re

import polars as pl
import pytest

from pipeline.pii.config import PiiConfig
from pipeline.pii.find import find_pii
from pipeline.pii.scan import _RUST_WINDOW_PATTERNS, CANDIDATE_PATTERNS, _ascii_digits, get_analyzer
from pipeline.pii.stage import remove_pii


def _docs(texts: list[str], source: str = "web") -> pl.DataFrame:
    return pl.DataFrame(
        {
            "id": [f"d{i}" for i in range(len(texts))],
            "text": texts,
            "source": [source] * len(texts),
            "url": [None] * len(texts),
            "path": ["x"] * len(texts),
            "meta": ["{}"] * len(texts),
        },
        schema_overrides={"url": pl.String},
    )


def _run(texts: list[str], source: str = "web", **cfg: object) -> tuple[list[str], dict]:
    res = remove_pii(_docs(texts, source), PiiConfig(**cfg))
    assert res.kept.height == len(texts) and res.rejected.height == 0
    return res.kept["text"].to_list(), res.stats


PLANTED = [
    ("EMAIL_ADDRESS", "<EMAIL>", "Questions? Write to jane.doe@example.com before Friday.", "jane.doe@example.com"),
    ("EMAIL_ADDRESS", "<EMAIL>", "Subscribe with bob+newsletter@gmail.com to get updates.", "bob+newsletter@gmail.com"),
    ("EMAIL_ADDRESS", "<EMAIL>", "Ask the lab: m.smith@cs.mail.stanford.edu has data.", "m.smith@cs.mail.stanford.edu"),
    ("PHONE_NUMBER", "<PHONE>", "Reach our office at (415) 555-0132 during business hours.", "(415) 555-0132"),
    ("PHONE_NUMBER", "<PHONE>", "Our US support line is +1 415-555-0132, open daily.", "415-555-0132"),
    ("PHONE_NUMBER", "<PHONE>", "The London desk answers on +44 20 7946 0958 until 6pm.", "7946 0958"),
    ("PHONE_NUMBER", "<PHONE>", "Das Berliner Büro erreichen Sie unter +49 30 901820 werktags.", "901820"),
    ("IP_ADDRESS", "<IP>", "The router at 192.168.1.20 kept dropping packets.", "192.168.1.20"),
    ("IP_ADDRESS", "<IP>", "Failed login from 203.0.113.7 at midnight.", "203.0.113.7"),
    ("CREDIT_CARD", "<CREDIT_CARD>", "I paid with my card 4111 1111 1111 1111 yesterday.", "4111 1111 1111 1111"),
    ("CREDIT_CARD", "<CREDIT_CARD>", "Charge it to 5500-0000-0000-0004, expiry 12/27.", "5500-0000-0000-0004"),
]


@pytest.mark.parametrize(("entity", "token", "text", "value"), PLANTED, ids=[p[3] for p in PLANTED])
def test_planted_value_replaced(entity: str, token: str, text: str, value: str) -> None:
    res = remove_pii(_docs([text]), PiiConfig())
    out = res.kept["text"][0]
    assert token in out, out
    assert value not in out
    assert res.kept["pii_count"][0] == 1
    assert json.loads(res.kept["pii_types"][0]) == {entity: 1}
    assert res.stats["counts"][entity] == 1


def test_surrounding_text_kept() -> None:
    (out,), _ = _run(["Call me at (415) 555-0132 or mail jane@example.org, thanks."])
    assert out == "Call me at <PHONE> or mail <EMAIL>, thanks."


def test_luhn_failure_is_not_a_card() -> None:
    (out,), stats = _run(["Order number 4111 1111 1111 1112 was shipped."])
    assert "4111 1111 1111 1112" in out
    assert stats["counts"]["CREDIT_CARD"] == 0


SURVIVORS = [
    "Changelog: upgraded to version 1.2.3.4 which fixes the crash.",
    "Released v1.2.3.4 last week; see the 1.2.3.4 release notes.",
    'install_requires = ["readability-lxml==0.8.4.1"]',
    "The meeting was held on 2023-10-12 at the town hall.",
    "Timestamp 2023-10-12T14:30:00Z and range 2009-2017.",
    "See ISBN 978-3-16-148410-0 and ISBN 0-306-40615-2 for details.",
    "Request id 550e8400-e29b-41d4-a716-446655440000 was logged.",
    "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 matches.",
    "commit 9fceb02d0ae598e95dc970b74767f19372d61af8 fixed it",
    "The ratio is 0.5104606781 and pi is 3.14159265358.",
    "Years: 1896 1897 1898 1899 1900 1901 1902 1903 1904 1905 1906.",
    "Written Wed Sep 07 2024 06:05:04 GMT by the logger.",
    'std::vector<int> v; auto x = Add::new; s="${lines[3]::23}";',
]


@pytest.mark.parametrize("text", SURVIVORS)
def test_false_positives_survive(text: str) -> None:
    (out,), stats = _run([text])
    assert out == text
    assert sum(stats["counts"].values()) == 0


def test_code_integer_constants_survive() -> None:
    code = "timeout = 3600000\nMAX_BYTES = 4294967295\nretry_ms = 86400000\nphone_like = 4155550132\n"
    (out,), _ = _run([code], source="code")
    assert out == code


def test_bare_digits_need_phone_context_in_prose() -> None:
    (a, b), _ = _run(["Phone: 4155550132 (after 5pm).", "Invoice 4155550132 was paid."])
    assert a == "Phone: <PHONE> (after 5pm)."
    assert b == "Invoice 4155550132 was paid."


def test_digits_of_other_scripts_are_found_in_mixed_batches() -> None:
    # The candidate pass reads documents whose digits are all ASCII with [0-9] patterns and the others with
    # Unicode \d (libphonenumber reads full-width digits); the two groups must come back in document order.
    texts = [
        "Call ＋４４ ２０ ７９４６ ０９５８ tonight.",
        "Call “us” on +44 20 7946 0958 tonight.",
        "No digits here, only “quotes”.",
        "Call +44 20 7946 0958 or ＋４４ ２０ ７９４６ ０９５８.",
        "Call +44 20 7946 0958 tonight.",
    ]
    out, stats = _run(texts)
    assert out == [
        "Call <PHONE> tonight.",
        "Call “us” on <PHONE> tonight.",
        texts[2],
        "Call <PHONE> or <PHONE>.",
        "Call <PHONE> tonight.",
    ]
    assert stats["counts"]["PHONE_NUMBER"] == 5


def test_ascii_digit_rewrite_is_safe_for_every_pattern() -> None:
    # ``_ascii_digits`` rewrites ``\d`` textually: it must never sit inside a character class.
    for pattern in [*CANDIDATE_PATTERNS.values(), *_RUST_WINDOW_PATTERNS]:
        assert not re.search(r"\[[^\]]*\\d", pattern), pattern
        assert "\\d" not in _ascii_digits(pattern)


def test_docs_without_candidates_skip_presidio(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = PiiConfig()
    analyzer = get_analyzer(cfg)
    calls: list[str] = []
    real = analyzer.analyze

    def counting(text: str, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        calls.append(text)
        return real(text, *args, **kwargs)

    monkeypatch.setattr(analyzer, "analyze", counting)
    clean = ["Plain prose with no numbers at all.", "Chapter 12 begins in 1852.", "a = b + c", ""]
    texts = [*clean, "Mail me at someone@example.com please."]
    res = remove_pii(_docs(texts), cfg)
    assert res.kept["text"].to_list()[:4] == clean
    assert res.kept["pii_count"].to_list() == [0, 0, 0, 0, 1]
    assert res.kept["pii_types"].to_list()[:4] == ["{}"] * 4
    # one call, for the e-mail doc, with only the e-mail recognizer's window
    assert len(calls) == 1 and "someone@example.com" in calls[0] and "Plain prose" not in calls[0]
    assert res.stats["docs_scanned"] == 1


def test_apply_to_sources() -> None:
    text = "Write to jane@example.com."
    res = remove_pii(pl.concat([_docs([text], "web"), _docs([text], "book")]), PiiConfig(apply_to_sources=["web"]))
    assert res.kept["text"].to_list() == ["Write to <EMAIL>.", text]


def test_stats_and_invariants() -> None:
    texts = [
        "Call (415) 555-0132 or (415) 555-0199; mail a@example.com.",
        "Server 203.0.113.7, card 4111 1111 1111 1111.",
        "Nothing here.",
    ]
    df = pl.concat([_docs(texts[:2], "web"), _docs(texts[2:], "book")])
    res = remove_pii(df, PiiConfig())
    assert res.kept.height + res.rejected.height == df.height
    assert res.kept["id"].to_list() == df["id"].to_list()  # order and rows preserved
    assert set(df.columns) <= set(res.kept.columns)
    nonzero = {e: c for e, c in res.stats["counts"].items() if c}
    assert nonzero == {"EMAIL_ADDRESS": 1, "PHONE_NUMBER": 2, "IP_ADDRESS": 1, "CREDIT_CARD": 1}
    assert res.stats["docs_with_pii"] == 2
    assert res.stats["by_source"] == {"web": {"CREDIT_CARD": 1, "EMAIL_ADDRESS": 1, "IP_ADDRESS": 1, "PHONE_NUMBER": 2}}
    assert res.kept["pii_count"].to_list() == [3, 2, 0]
    out = "\n".join(res.kept["text"])
    for value in ("555-0132", "555-0199", "a@example.com", "203.0.113.7", "4111 1111 1111 1111"):
        assert value not in out


def test_custom_placeholders_and_entities() -> None:
    (out,), stats = _run(
        ["Mail x@example.com from 203.0.113.7"], entities=["EMAIL_ADDRESS"], placeholders={"EMAIL_ADDRESS": "[e]"}
    )
    assert out == "Mail [e] from 203.0.113.7"
    assert stats["counts"] == {"EMAIL_ADDRESS": 1}  # only the configured types are counted


def test_config_rejects_unknown() -> None:
    with pytest.raises(ValueError):
        PiiConfig(entities=["PERSON"])
    with pytest.raises(ValueError):
        PiiConfig(bogus=1)  # type: ignore[call-arg]


def test_empty_frame() -> None:
    res = remove_pii(_docs([]), PiiConfig())
    assert res.kept.height == 0 and "pii_count" in res.kept.columns


def test_candidate_pass_finds_what_naive_presidio_finds(shared_data) -> None:  # type: ignore[no-untyped-def]
    """On real books (their licence footers hold e-mails and a phone number) the pre-filtered pass loses nothing.

    Speed is measured by benchmarks/pii.py, not here.
    """
    texts = [gzip.open(p, "rt", encoding="utf-8").read() for p in sorted((shared_data / "books").glob("*.txt.gz"))[:4]]
    if not texts:
        pytest.skip("no books in ../shared/data")
    cfg = PiiConfig(entities=["EMAIL_ADDRESS", "PHONE_NUMBER", "IP_ADDRESS", "CREDIT_CARD"])
    analyzer = get_analyzer(cfg)
    res = remove_pii(_docs(texts, "book"), cfg)
    naive_hits = sum(len(analyzer.analyze(t, language="en", entities=cfg.entities)) for t in texts)
    assert sum(res.stats["counts"].values()) == naive_hits > 0


EMAIL_EDGES = [
    "Mail <jane.doe@example.com>, (bob@example.org); 'x.y@example.net' or [a+b@example.io].",
    "Two in a run: first@one.example.com,second@two.example.com and a@b@c.example.com here.",
    "mailto:someone@example.com?subject=hi and user:pw@host.example.com/path",
    "A long local part " + "a" * 200 + "@example.com ends here, " + "b" * 70 + ".c@example.com too.",
    "Unicode: jürgen.müller@example.de, 山田@example.jp, josé@example.es.",
    "Adjacent\u00a0nbsp@example.com\u00a0and tab\tt@example.com\tand line\nl@example.com\n",
]


@pytest.mark.parametrize("text", EMAIL_EDGES)
def test_email_windows_find_what_presidio_finds_in_the_whole_text(text: str) -> None:
    # E-mail windows are cut to the run of characters an address can hold (``_address_run``).
    cfg = PiiConfig(entities=["EMAIL_ADDRESS"])
    naive = sorted((r.start, r.end) for r in get_analyzer(cfg).analyze(text, language="en", entities=cfg.entities))
    found = [(f.start, f.end) for f in find_pii([text], ["web"], cfg)[0]]
    assert found == naive and naive
