"""Text normalisation: mojibake repair, NFC, control characters, whitespace."""

from __future__ import annotations

import unicodedata

import polars as pl

from pipeline.normalize import NormalizeConfig, normalize


def _df(texts: list[str], sources: list[str] | None = None) -> pl.DataFrame:
    n = len(texts)
    return pl.DataFrame({"id": [str(i) for i in range(n)], "text": texts, "source": sources or ["web"] * n})


def test_mojibake_nfc_control_whitespace():
    texts = [
        "Le cafÃ© est â€œbonâ€\x9d.",  # UTF-8 read as cp1252
        "Cafe\u0301 \u201ccurly\u201d\x07 text   \r\nnext line\n\n\n\n\nend  ",
        "def f():\r\n    return 1\n\n\n\n",
    ]
    res = normalize(_df(texts, ["web", "web", "code"]), NormalizeConfig())
    a, b, c = res.kept["text"].to_list()
    assert a == "Le café est “bon”."
    assert b == unicodedata.normalize("NFC", "Café “curly” text\nnext line\n\nend")  # quotes untouched
    assert c == "def f():\n    return 1\n\n\n\n"  # code whitespace kept, only line endings
    assert res.stats["mojibake_fixed"] == 1


def test_choices_can_be_switched_off_and_empty_rejected():
    cfg = NormalizeConfig(fix_mojibake=False, unicode_form="none", normalize_whitespace=False)
    res = normalize(_df(["cafÃ©  ", "e\u0301", "\x00\x01"]), cfg)
    assert res.kept["text"].to_list() == ["cafÃ©  ", "e\u0301"]
    assert res.rejected["reason"].to_list() == ["empty_after_normalize"]
    assert len(res.kept) + len(res.rejected) == 3
