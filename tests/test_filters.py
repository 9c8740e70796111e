"""Heuristic filter: every rule just passes at its threshold and just fails past it."""

from __future__ import annotations

import gzip
import json
import random
import string

import polars as pl
import pytest
from pydantic import ValidationError

from pipeline.filters.stage import RULE_NAMES, STAT_COLUMNS, FilterConfig, apply_filters, compute_stats

_STOP = {"the", "be", "to", "of", "and", "that", "have", "with"}


def _uniq_words(k: int, length: int = 5, seed: int = 0) -> list[str]:
    """``k`` distinct lowercase words of ``length`` letters (never a stop word)."""
    rng = random.Random(seed * 7919 + length)
    out: set[str] = set()
    words: list[str] = []
    while len(words) < k:
        w = "".join(rng.choice(string.ascii_lowercase) for _ in range(length))
        if w not in out and w not in _STOP:
            out.add(w)
            words.append(w)
    return words


def _docs(texts: list[str], source: str = "web", metas: list[dict] | None = None) -> pl.DataFrame:
    n = len(texts)
    return pl.DataFrame(
        {
            "id": [f"d{i}" for i in range(n)],
            "text": texts,
            "source": [source] * n,
            "url": [None] * n,
            "path": [f"p{i}" for i in range(n)],
            "meta": [json.dumps(m) for m in (metas or [{}] * n)],
        },
        schema={
            "id": pl.String,
            "text": pl.String,
            "source": pl.String,
            "url": pl.String,
            "path": pl.String,
            "meta": pl.String,
        },
    )


def _only(rule: str, **kw: object) -> FilterConfig:
    """A config in which ``rule`` is the only enabled rule."""
    return FilterConfig(disabled_rules=[r for r in RULE_NAMES if r != rule], **kw)


def _check(rule: str, passing: str, failing: str, reason: str, source: str = "web", **kw: object) -> None:
    res = apply_filters(_docs([passing, failing], source), _only(rule, **kw))
    assert res.kept["id"].to_list() == ["d0"], res.rejected["reason"].to_list()
    assert res.rejected["id"].to_list() == ["d1"]
    assert res.rejected["reason"].to_list() == [reason]
    assert res.rejected["stage"].to_list() == ["filter"]


def _good_text(n_words: int = 120, seed: int = 0) -> str:
    """Natural-ish prose: distinct words, a few stop words, several lines and paragraphs."""
    words = _uniq_words(n_words, 5, seed)
    for i in range(0, n_words, 10):
        words[i] = ["the", "and", "of", "to"][(i // 10) % 4]
    lines = [" ".join(words[i : i + 12]) + "." for i in range(0, n_words, 12)]
    return "\n".join(lines[:4]) + "\n\n" + "\n".join(lines[4:])


# ---------------------------------------------------------------------------------------------
# whole-stage behaviour


def test_good_document_is_kept_with_defaults() -> None:
    res = apply_filters(_docs([_good_text()]))
    assert len(res.kept) == 1 and len(res.rejected) == 0
    assert res.stats == {"dropped_by_rule": {}}


def test_stats_columns_present_and_null_where_not_applicable() -> None:
    df = pl.concat([_docs([_good_text()]), _docs(["def f():\n    return 1\n"], "code").with_columns(id=pl.lit("c"))])
    s = compute_stats(df)
    assert s.columns[: len(df.columns)] == df.columns
    assert set(STAT_COLUMNS) <= set(s.columns)
    prose, code = s.row(0, named=True), s.row(1, named=True)
    assert prose["code_max_line_len"] is None and prose["gopher_word_count"] == 120
    assert code["gopher_word_count"] is None and code["rep_dup5gram_frac"] is None
    assert code["code_max_line_len"] == 12


def test_rows_in_equals_kept_plus_rejected_and_counts() -> None:
    texts = [_good_text(seed=i) for i in range(5)] + ["too short"] * 3 + [""] + [None]  # type: ignore[list-item]
    df = _docs(texts)  # type: ignore[arg-type]
    res = apply_filters(df)
    assert len(res.kept) + len(res.rejected) == len(df)
    assert len(res.kept) == 5
    assert res.stats["dropped_by_rule"] == {"gopher_word_count<50": 5}
    assert set(STAT_COLUMNS) <= set(res.kept.columns)  # kept rows keep their stats
    assert res.rejected.columns[:6] == ["id", "source", "url", "path", "stage", "reason"]


def test_first_failing_rule_in_fixed_order() -> None:
    # fails word count, stop words and alpha words: word count comes first
    res = apply_filters(_docs(["1 2 3 4 5 6"]))
    assert res.rejected["reason"].to_list() == ["gopher_word_count<50"]
    res = apply_filters(_docs(["1 2 3 4 5 6"]), FilterConfig(disabled_rules=["gopher_min_words"]))
    assert res.rejected["reason"].to_list() == ["gopher_mean_word_length<3.0"]


def test_disabled_and_none_threshold_and_disabled_stage() -> None:
    df = _docs(["too short"])
    assert (
        len(apply_filters(df, FilterConfig(min_words=None, min_stop_words=None, min_mean_word_length=None)).kept) == 1
    )
    assert len(apply_filters(df, FilterConfig(enabled=False)).kept) == 1
    with pytest.raises(ValidationError):
        FilterConfig(disabled_rules=["no_such_rule"])
    with pytest.raises(ValidationError):
        FilterConfig(unknown_field=1)  # type: ignore[call-arg]


def test_prose_rules_skip_code_and_langs() -> None:
    res = apply_filters(_docs(["x = 1\n"], "code"))
    assert len(res.kept) == 1
    df = _docs(["kurz", "short"]).with_columns(lang=pl.Series(["de", "en"]))
    res = apply_filters(df, FilterConfig(prose_langs=["en"]))
    assert res.kept["id"].to_list() == ["d0"] and res.rejected["id"].to_list() == ["d1"]
    assert res.rejected["lang"].to_list() == ["en"]


# ---------------------------------------------------------------------------------------------
# Gopher quality rules


def test_word_count_min() -> None:
    _check("gopher_min_words", " ".join(_uniq_words(50)), " ".join(_uniq_words(49)), "gopher_word_count<50")


def test_word_count_min_ignores_symbol_only_tokens() -> None:
    s = compute_stats(_docs([" ".join(_uniq_words(49)) + " - ## ..."]))
    assert s["gopher_word_count"].to_list() == [49]


def test_word_count_max_and_books() -> None:
    _check(
        "gopher_max_words", " ".join(_uniq_words(60)), " ".join(_uniq_words(61)), "gopher_word_count>60", max_words=60
    )
    # books are not bounded by default ...
    res = apply_filters(_docs([" ".join(_uniq_words(61))], "book"), _only("gopher_max_words", max_words=60))
    assert len(res.kept) == 1
    # ... unless book_max_words is set
    _check(
        "gopher_max_words",
        " ".join(_uniq_words(70)),
        " ".join(_uniq_words(71)),
        "gopher_word_count>70",
        source="book",
        max_words=60,
        book_max_words=70,
    )


def test_default_max_words_does_not_reject_long_book() -> None:
    words = _uniq_words(2000, 6)
    long_text = " ".join(words[i % 2000] + ("" if i < 2000 else str(i)) for i in range(100_500))
    res = apply_filters(
        _docs([long_text, long_text], "book").with_columns(source=pl.Series(["book", "web"])), _only("gopher_max_words")
    )
    assert res.kept["source"].to_list() == ["book"]
    assert res.rejected["reason"].to_list() == ["gopher_word_count>100000"]


def test_mean_word_length() -> None:
    three = _uniq_words(60, 3)
    _check("gopher_min_mean_word_length", " ".join(three), " ".join(three[:-1] + ["ab"]), "gopher_mean_word_length<3.0")
    ten = _uniq_words(60, 10)
    _check(
        "gopher_max_mean_word_length", " ".join(ten), " ".join(ten[:-1] + ["a" * 11]), "gopher_mean_word_length>10.0"
    )


def test_symbol_ratio_hash_and_ellipsis() -> None:
    w = _uniq_words(100)
    ok = " ".join(("#" + x) if i < 10 else x for i, x in enumerate(w))
    bad = " ".join(("#" + x) if i < 11 else x for i, x in enumerate(w))
    _check("gopher_symbol_ratio", ok, bad, "gopher_symbol_ratio>0.1")
    ok = " ".join((x + "...") if i < 5 else (x + "…") if i < 10 else x for i, x in enumerate(w))
    bad = " ".join((x + "…") if i < 11 else x for i, x in enumerate(w))
    _check("gopher_symbol_ratio", ok, bad, "gopher_symbol_ratio>0.1")
    assert compute_stats(_docs([ok]))["gopher_symbol_ratio"].to_list() == [0.1]


def _lines(n: int, words_per_line: int = 10, seed: int = 3) -> list[str]:
    w = _uniq_words(n * words_per_line, 5, seed)
    return [" ".join(w[i * words_per_line : (i + 1) * words_per_line]) for i in range(n)]


def test_bullet_lines() -> None:
    lines = _lines(10)
    ok = "\n".join(("- " + x) if i < 9 else x for i, x in enumerate(lines))
    bad = "\n\n".join("• " + x for x in lines)  # blank lines are not counted
    _check("gopher_bullet_lines", ok, bad, "gopher_bullet_lines_frac>0.9")
    assert compute_stats(_docs([ok]))["gopher_bullet_lines_frac"].to_list() == [0.9]


def test_ellipsis_lines() -> None:
    lines = _lines(10)
    ok = "\n".join((x + "...") if i < 3 else x for i, x in enumerate(lines))
    bad = "\n".join((x + "…") if i < 4 else x for i, x in enumerate(lines))
    _check("gopher_ellipsis_lines", ok, bad, "gopher_ellipsis_lines_frac>0.3")


def test_alpha_words() -> None:
    w = _uniq_words(100)
    ok = " ".join(str(100 + i) if i < 20 else x for i, x in enumerate(w))
    bad = " ".join(str(100 + i) if i < 21 else x for i, x in enumerate(w))
    _check("gopher_alpha_words", ok, bad, "gopher_alpha_words_frac<0.8")
    assert compute_stats(_docs([ok]))["gopher_alpha_words_frac"].to_list() == [0.8]


def test_stop_words() -> None:
    w = _uniq_words(60)
    ok = " ".join(["The"] + w + ["with."])  # case and punctuation do not hide a stop word
    bad = " ".join(["the"] + w)
    _check("gopher_stop_words", ok, bad, "gopher_stop_words<2")
    assert compute_stats(_docs([ok]))["gopher_stop_words"].to_list() == [2]


# ---------------------------------------------------------------------------------------------
# Gopher repetition rules


def test_dup_line_frac() -> None:
    lines = _lines(10)
    ok = "\n".join(lines[:7] + lines[:3])  # 3 of 10 lines repeat an earlier one
    bad = "\n".join(lines[:6] + lines[:4])
    _check("rep_dup_line", ok, bad, "rep_dup_line_frac>0.3")
    s = compute_stats(_docs([ok])).row(0, named=True)
    assert s["rep_dup_line_frac"] == pytest.approx(0.3) and s["rep_dup_line_char_frac"] == pytest.approx(0.3)


def test_dup_line_char_frac() -> None:
    lines = _lines(10)
    _check(
        "rep_dup_line_char",
        "\n".join(lines[:8] + lines[:2]),
        "\n".join(lines[:7] + lines[:3]),
        "rep_dup_line_char_frac>0.2",
    )


def test_dup_para_frac_and_chars() -> None:
    paras = _lines(10, seed=5)
    _check(
        "rep_dup_para", "\n\n".join(paras[:7] + paras[:3]), "\n\n".join(paras[:6] + paras[:4]), "rep_dup_para_frac>0.3"
    )
    _check(
        "rep_dup_para_char",
        "\n\n".join(paras[:8] + paras[:2]),
        "\n \n".join(paras[:7] + paras[:3]),
        "rep_dup_para_char_frac>0.2",
    )
    # single newlines do not split paragraphs
    s = compute_stats(_docs(["\n".join(paras[:2] + paras[:2])])).row(0, named=True)
    assert s["rep_dup_para_frac"] == 0.0 and s["rep_dup_line_frac"] == 0.5


def _top_doc(n: int, k: int, m: int) -> str:
    """k copies of an n-word phrase of 2-letter words, among m distinct 4-letter filler words.

    top n-gram char fraction = 2nk / (4m + 2nk).
    """
    phrase = " ".join(["qq", "zz", "xx", "yy"][:n])
    filler = _uniq_words(m, 4, seed=n)
    out: list[str] = []
    per = m // k
    for i in range(k):
        out += [phrase] + filler[i * per : (i + 1) * per]
    out += filler[k * per :]
    return " ".join(out)


@pytest.mark.parametrize(("n", "k", "m", "thr"), [(2, 10, 40, "0.2"), (3, 6, 41, "0.18"), (4, 4, 42, "0.16")])
def test_top_ngram_frac(n: int, k: int, m: int, thr: str) -> None:
    ok, bad = _top_doc(n, k, m), _top_doc(n, k + 1, m)
    assert compute_stats(_docs([ok]))[f"rep_top{n}gram_frac"].to_list() == [float(thr)]
    _check(f"rep_top{n}gram", ok, bad, f"rep_top{n}gram_frac>{thr}")


def _dup_doc(n: int, x: int, m: int) -> str:
    """An n-word block of x-letter words, twice, among m distinct 4-letter filler words."""
    block = _uniq_words(n, x, seed=99)
    filler = _uniq_words(m, 4, seed=n + 50)
    half = m // 2
    return " ".join(block + filler[:half] + block + filler[half:])


@pytest.mark.parametrize(("n", "thr"), [(5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10)])
def test_dup_ngram_frac(n: int, thr: float) -> None:
    x = 6
    covered = 2 * n * x
    # smallest filler size at which the fraction covered / (covered + 4m) is <= thr
    m = next(m for m in range(1, 10_000) if covered / (covered + 4 * m) <= thr)
    ok, bad = _dup_doc(n, x, m), _dup_doc(n, x, m - 1)
    got = compute_stats(_docs([ok, bad]))[f"rep_dup{n}gram_frac"].to_list()
    assert got == pytest.approx([covered / (covered + 4 * m), covered / (covered + 4 * (m - 1))])
    _check(f"rep_dup{n}gram", ok, bad, f"rep_dup{n}gram_frac>{thr}")
    # a block one word shorter than n holds no duplicated n-gram
    assert compute_stats(_docs([_dup_doc(n - 1, x, m)]))[f"rep_dup{n}gram_frac"].to_list() == [0.0]


def test_dup_ngram_overlapping_coverage_counted_once() -> None:
    # "a b c d e f" twice: 5-grams (a..e) and (b..f) repeat; covered words = 12 of 12 + filler
    block = _uniq_words(6, 4, seed=7)
    filler = _uniq_words(12, 4, seed=8)
    s = compute_stats(_docs([" ".join(block + filler + block)]))
    assert s["rep_dup5gram_frac"].to_list() == [pytest.approx(48 / 96)]


# ---------------------------------------------------------------------------------------------
# code rules


def test_code_max_line_len() -> None:
    body = "x = 1\n" * 20
    _check("code_max_line_len", body + "a" * 1000, body + "a" * 1001, "code_max_line_len>1000", source="code")


def test_code_mean_line_len() -> None:
    ok = "\n".join(["a" * 100] * 10)
    bad = "\n".join(["a" * 100] * 9 + ["a" * 101])
    _check("code_mean_line_len", ok, bad, "code_mean_line_len>100.0", source="code")


def test_code_alnum_frac() -> None:
    # 4 alphanumerics in 16 chars passes; in 17 chars fails
    _check("code_alnum_frac", "a1 {}\nb2 {}\n(((\n", "a1 {}\nb2 {}\n((((\n", "code_alnum_frac<0.25", source="code")
    s = compute_stats(_docs(["a###"], "code"))
    assert s["code_alnum_frac"].to_list() == [0.25]


@pytest.mark.parametrize("flag", ["minified", "generated", "lockfile"])
def test_code_meta_flags(flag: str) -> None:
    df = _docs(["x = 1\n"] * 3, "code", metas=[{flag: True, "language": "python"}, {flag: False}, {}])
    res = apply_filters(df)
    assert res.rejected["reason"].to_list() == [f"code_{flag}"]
    assert res.kept["id"].to_list() == ["d1", "d2"]
    assert res.stats["dropped_by_rule"] == {f"code_{flag}": 1}
    assert len(apply_filters(df, FilterConfig(**{f"code_reject_{flag}": False})).kept) == 3


def test_code_rules_do_not_apply_to_prose() -> None:
    res = apply_filters(_docs([_good_text() + "\n" + "verylongword " * 100]), _only("code_max_line_len"))
    assert len(res.kept) == 1


# ---------------------------------------------------------------------------------------------
# real data (skips without ../shared/data)


def test_books_chunks_mostly_kept(shared_data) -> None:  # noqa: ANN001
    files = sorted((shared_data / "books").glob("*.txt.gz"))[:2]
    if not files:
        pytest.skip("no books")
    texts = []
    for f in files:
        t = gzip.open(f, "rt", encoding="utf-8", errors="replace").read()[20_000:120_000]
        texts += [t[i : i + 2000] for i in range(0, len(t), 2000)]
    res = apply_filters(_docs(texts, "book"))
    assert len(res.kept) + len(res.rejected) == len(texts)
    assert len(res.kept) >= 0.9 * len(texts), res.stats
