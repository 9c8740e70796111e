"""C4, FineWeb, RefinedWeb and book rules at and around their thresholds; detail JSON; datatrove mode."""

from __future__ import annotations

import json

import polars as pl
import pytest

from pipeline.filters.stage import RULE_NAMES, FilterConfig, apply_filters, compute_stats, rule_failures
from tests.test_filters import _docs


def _only(rule: str, family: str, **kw: object) -> FilterConfig:
    return FilterConfig(families=[family], disabled_rules=[r for r in RULE_NAMES if r != rule], **kw)


def _check(rule: str, family: str, passing: str, failing: str, reason: str, source: str = "web", **kw) -> None:
    res = apply_filters(_docs([passing, failing], source), _only(rule, family, **kw))
    assert res.kept["id"].to_list() == ["d0"], res.rejected["reason"].to_list()
    assert res.rejected["reason"].to_list() == [reason]


def _sent(i: int) -> str:
    return f"Sentence number {i} has several words in it."


# ---------------------------------------------------------------------------------------------- C4


def test_c4_min_sentences_at_threshold() -> None:
    ok = "\n".join(_sent(i) for i in range(5))
    bad = "\n".join(_sent(i) for i in range(4))
    _check("c4_min_sentences", "c4", ok, bad, "c4_sentences<5")
    assert compute_stats(_docs([ok]), FilterConfig(families=["c4"]))["c4_sentences"].to_list() == [5]


def test_c4_line_removal_rewrites_text_and_rejects_keep_original() -> None:
    lines = [_sent(i) for i in range(5)]
    text = "\n".join(
        [
            *lines,
            "no terminal punctuation here",
            "Two words.",
            "Please enable JavaScript to view this page.",
            "Read our privacy policy before you go.",
            "Trailing ellipsis is not an end...",
            "Cited fact here [1].",
        ]
    )
    res = apply_filters(_docs([text]), FilterConfig(families=["c4"]))
    assert res.kept["text"].to_list() == ["\n".join([*lines, "Cited fact here ."])]
    assert res.kept["c4_removed_lines_frac"].to_list() == [pytest.approx(5 / 11)]
    short = apply_filters(_docs(["\n".join(lines[:4] + ["junk line"])]), FilterConfig(families=["c4"]))
    assert short.rejected["text"].to_list() == ["\n".join(lines[:4] + ["junk line"])]  # the original text
    assert json.loads(short.rejected["detail"][0]) == {"c4_sentences": 4}


@pytest.mark.parametrize(
    ("line", "reason"),
    [("Lorem ipsum dolor sit amet.", "c4_lorem_ipsum"), ("function f() { return 1; }.", "c4_curly_bracket")],
)
def test_c4_page_rules(line: str, reason: str) -> None:
    base = "\n".join(_sent(i) for i in range(6))
    _check(reason, "c4", base, base + "\n" + line, reason)
    # a line already dropped (no terminal punctuation) does not trigger the page rule
    _check(reason, "c4", base + "\n" + line.rstrip("."), base + "\n" + line, reason)


# ---------------------------------------------------------------------------------------------- FineWeb


def test_fineweb_line_punct_at_threshold() -> None:
    # 25 lines of >30 chars; k end in punctuation: k/25 <= 0.12 drops (k = 3), 0.16 keeps (k = 4)
    def doc(k: int) -> str:
        return "\n".join(f"line {i:02d} with enough characters to be long" + ("." if i < k else "") for i in range(25))

    cfg = {"fineweb_min_line_punct_frac": 0.12}
    _check("fineweb_line_punct", "fineweb", doc(4), doc(3), "fineweb_line_punct_frac<=0.12", **cfg)


def test_fineweb_short_lines_and_dup_chars() -> None:
    long = [f"this is a long line number {i:03d} of prose." for i in range(10)]
    short = [f"short {i}." for i in range(30)]
    ok = "\n".join(long[:4] + short[:6])  # 6/10 short < 0.67
    bad = "\n".join(long[:3] + short[:7])  # 7/10 short >= 0.67
    _check("fineweb_short_lines", "fineweb", ok, bad, "fineweb_short_line_frac>=0.67")
    dup_ok = "\n".join(long)  # no duplicated line
    dup_bad = "\n".join(long + long[:1])
    _check(
        "fineweb_dup_line_chars",
        "fineweb",
        dup_ok,
        dup_bad,
        "fineweb_dup_line_char_frac>=0.01",
        fineweb_max_dup_line_char_frac=0.01,
    )


def test_fineweb_runs_on_c4_rewritten_text() -> None:
    text = "\n".join(_sent(i) for i in range(6)) + "\n" + "\n".join(f"menu item {i}" for i in range(30))
    s = compute_stats(_docs([text]), FilterConfig(families=["c4", "fineweb"]))
    assert s["fineweb_line_punct_frac"].to_list() == [1.0]  # the menu lines were removed by C4 first


# ---------------------------------------------------------------------------------------------- RefinedWeb


def test_refinedweb_removed_words_at_threshold() -> None:
    body = " ".join(f"word{i}" for i in range(95)) + "."
    ok = body + "\n" + "SHOUTING LINE FIVE WORDS"  # 5 of 100 words removed = 0.05: kept
    bad = body + "\n" + "SHOUTING LINE SIX WORDS NOW HERE"  # 6 of 101 > 0.05
    _check("refinedweb_removed_words", "refinedweb", ok, bad, "refinedweb_removed_words_frac>0.05")
    res = apply_filters(
        _docs([body + "\n12 likes\n2024\nHome\nSign in to comment"]),
        FilterConfig(families=["refinedweb"], refinedweb_max_removed_words_frac=0.5),
    )
    assert res.kept["text"].to_list() == [body]


# ---------------------------------------------------------------------------------------------- books


def test_book_rules() -> None:
    prose = " ".join(f"word{i}" for i in range(1000))
    _check("book_min_words", "book", prose, " ".join(prose.split()[:999]), "gopher_word_count<1000", source="book")
    lines = [f"chapter {i} of a long book" for i in range(10)]
    ok = "\n".join([x.upper() for x in lines[:4]] + lines[4:]) + "\n" + prose
    bad = "\n".join([x.upper() for x in lines[:6]] + lines[6:])
    _check("book_upper_lines", "book", ok, bad, "book_upper_lines_frac>0.4", source="book", book_min_words=None)
    # book rules never judge web pages
    assert apply_filters(_docs([bad]), _only("book_upper_lines", "book")).rejected.height == 0


# ---------------------------------------------------------------------------------------------- plumbing


def test_detail_holds_the_failing_statistic_and_counts_are_per_rule() -> None:
    res = apply_filters(_docs(["too short", "also short here"]))
    assert [json.loads(d) for d in res.rejected["detail"]] == [{"gopher_word_count": 2}, {"gopher_word_count": 3}]
    assert res.stats["dropped_by_rule"] == {"gopher_word_count<50": 2}


def test_families_off_leave_null_columns_and_rule_failures() -> None:
    cfg = FilterConfig(families=["fineweb"])
    s = compute_stats(_docs(["A line.\nAnother line."]), cfg)
    assert s["gopher_word_count"].to_list() == [None]
    f = rule_failures(s, cfg)
    assert set(f.columns) == {
        "fineweb_line_punct",
        "fineweb_short_lines",
        "fineweb_dup_line_chars",
        "fineweb_newline_ratio",
    }


def test_datatrove_definitions() -> None:
    cfg = FilterConfig(definitions="datatrove")
    s = compute_stats(_docs(["The cat, the dog and The end."]), cfg).row(0, named=True)
    # tokens: The cat , the dog and The end . -> 9; stop words distinct and case-sensitive: the, and
    assert s["gopher_stop_words"] == 2
    assert s["gopher_alpha_words_frac"] == pytest.approx(7 / 9)
    paper = compute_stats(_docs(["The cat, the dog and The end."]), FilterConfig()).row(0, named=True)
    assert paper["gopher_stop_words"] == 4 and paper["gopher_alpha_words_frac"] == 1.0


def test_rows_in_equal_rows_out_with_every_family() -> None:
    from pipeline.filters.stage import FAMILIES

    texts = ["", "x", "\n".join(_sent(i) for i in range(8)), "{ a: 1 }\n" * 20]
    res = apply_filters(_docs(texts), FilterConfig(families=list(FAMILIES)))
    assert res.kept.height + res.rejected.height == 4
    assert pl.concat([res.kept.select("id"), res.rejected.select("id")])["id"].n_unique() == 4


def test_blocklist_is_the_first_rule() -> None:
    from pipeline.filters.blocklist import BlocklistConfig

    docs = _docs(["too short", "also short"]).with_columns(
        pl.Series("url", ["https://spam.example.com/x", "https://fine.org/y"])
    )
    res = apply_filters(docs, FilterConfig(blocklist=BlocklistConfig(domains=["spam.example.com"])))
    reasons = dict(zip(res.rejected["id"], res.rejected["reason"], strict=True))
    assert reasons["d1"] == "gopher_word_count<50"
    assert reasons["d0"] != "gopher_word_count<50" and res.stats["dropped_by_rule"][reasons["d0"]] == 1
