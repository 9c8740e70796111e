"""Decontamination, CCNet line dedup and exact substring dedup on planted cases."""

from __future__ import annotations

import json
import random

import polars as pl

from pipeline.decontaminate import DecontaminateConfig, decontaminate
from pipeline.dedup.lines import LineDedupConfig, remove_repeated_lines
from pipeline.dedup.substrings import SubstringDedupConfig, remove_repeated_substrings

_WORDS = [f"w{i}" for i in range(5000)]


def _prose(n: int, seed: int) -> str:
    return " ".join(random.Random(seed).choices(_WORDS, k=n))


def _docs(texts: list[str], source: str = "web") -> pl.DataFrame:
    n = len(texts)
    return pl.DataFrame(
        {
            "id": [f"d{i}" for i in range(n)],
            "text": texts,
            "source": [source] * n,
            "url": [None] * n,
            "path": [f"p{i}" for i in range(n)],
            "meta": ["{}"] * n,
        },
        schema={c: pl.String for c in ("id", "text", "source", "url", "path", "meta")},
    )


EVAL = (
    "Question: what is the boiling point of water at sea level in degrees celsius, "
    "and why does it fall as altitude increases? Answer: one hundred degrees, because pressure drops."
)


def test_planted_eval_passage_is_removed(tmp_path) -> None:
    (tmp_path / "eval.jsonl").write_text(json.dumps({"text": EVAL}) + "\n")
    docs = _docs(
        [
            _prose(200, 1) + " " + EVAL.upper().replace(",", " ,") + " " + _prose(100, 2),  # contaminated, reformatted
            _prose(300, 3),
            _prose(150, 4) + " what is the boiling point of water " + _prose(50, 5),  # 7 shared words only: clean
        ]
    )
    res = decontaminate(docs, DecontaminateConfig(eval_paths=[str(tmp_path / "eval.jsonl")]))
    assert res.kept["id"].to_list() == ["d1", "d2"]
    assert res.rejected["id"].to_list() == ["d0"] and res.rejected["reason"].to_list() == ["eval_overlap"]
    assert json.loads(res.rejected["detail"][0])["matched_ngrams"] >= 10
    assert res.stats["contaminated"] == 1
    flagged = decontaminate(docs, DecontaminateConfig(eval_texts=[EVAL], action="flag"))
    assert flagged.rejected.is_empty() and flagged.kept.height == 3
    assert flagged.kept["contamination_ngrams"].to_list()[1:] == [0, 0]
    assert flagged.kept["contamination_ngrams"][0] > 0


def test_no_eval_text_keeps_everything() -> None:
    res = decontaminate(_docs([_prose(50, 1)]), DecontaminateConfig())
    assert res.kept.height == 1 and res.rejected.is_empty()


def test_planted_repeated_span_is_cut_from_later_copies() -> None:
    span = _prose(60, 9)  # ~300 bytes
    texts = [_prose(100, 10) + " " + span + " " + _prose(50, 11), _prose(80, 12), _prose(90, 13) + " " + span, span]
    res = remove_repeated_substrings(_docs(texts), SubstringDedupConfig(min_len=100))
    kept = dict(res.kept.select("id", "text").iter_rows())
    assert span in kept["d0"]  # the earliest copy stays
    assert span not in kept["d2"] and kept["d2"].startswith(_prose(90, 13)[:200])
    assert kept["d1"] == texts[1]
    assert res.rejected["id"].to_list() == ["d3"]  # nothing left of it
    assert res.stats["spans_removed"] == 2 and res.stats["bytes_removed"] >= 2 * (len(span) - 2)
    assert res.kept.height + res.rejected.height == len(texts)


def test_short_repeats_are_left_alone() -> None:
    texts = [
        _prose(100, 20) + " shared phrase of modest length " + _prose(100, 21),
        _prose(100, 22) + " shared phrase of modest length " + _prose(100, 23),
    ]
    res = remove_repeated_substrings(_docs(texts), SubstringDedupConfig(min_len=100))
    assert res.kept["text"].to_list() == texts and res.stats["spans_removed"] == 0


def test_boilerplate_lines_removed_and_counted() -> None:
    nav = "Home | News | Sport | Contact"
    texts = [f"{nav}\n{_prose(40, i)}\nCopyright {2000 + i} Example Ltd" for i in range(4)] + [f"{nav}\n"]
    res = remove_repeated_lines(_docs(texts), LineDedupConfig(min_docs=3))
    assert res.kept.height == 4 and res.rejected["reason"].to_list() == ["boilerplate_only"]
    for i, t in enumerate(res.kept["text"].to_list()):
        assert t == _prose(40, i)  # the navigation line and the (digit-normalised) footer are gone
    assert res.stats["lines_removed"] == 9 and res.stats["docs_changed"] == 5
    # code is out of scope by default
    code = remove_repeated_lines(_docs(texts, source="code"), LineDedupConfig(min_docs=3))
    assert code.kept["text"].to_list() == texts
