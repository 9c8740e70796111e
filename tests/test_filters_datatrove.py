"""definitions="datatrove": spaCy-style word tokens, datatrove's n-gram scan and FineWeb bounds."""

from __future__ import annotations

import polars as pl
import pytest

from pipeline.filters.datatrove_words import dt_word_count, dt_words
from pipeline.filters.stage import RULE_NAMES, FilterConfig, apply_filters, compute_stats
from tests.test_filters import _docs, _uniq_words

# whitespace chunk -> spaCy 3.8 blank "en" tokens (checked against spaCy below when it is installed)
CASES = {
    "well-known": ["well", "-", "known"],
    "1995-2017": ["1995", "-", "2017"],
    "--debug": ["--debug"],
    "KWANDE/": ["KWANDE/"],
    "TSV/DJK": ["TSV", "/", "DJK"],
    "haven't": ["have", "n't"],
    "didn't.": ["did", "n't", "."],
    "I'm": ["I", "'m"],
    "king’s": ["king", "’s"],
    "George's,": ["George", "'s", ","],
    "dont": ["do", "nt"],
    "Mr.": ["Mr."],
    "e.g.,": ["e.g.", ","],
    "C.": ["C."],
    "U.S.": ["U.S."],
    "ABC.": ["ABC", "."],
    "end.": ["end", "."],
    "3.5": ["3.5"],
    "5km": ["5", "km"],
    "50%": ["50", "%"],
    "$5": ["$", "5"],
    "MR...": ["MR", "..."],
    "Trump.An": ["Trump", ".", "An"],
    "a,b": ["a", ",", "b"],
    '"quoted"': ['"', "quoted", '"'],
    "(https://example.com/a-b).": ["(", "https://example.com/a-b", ")", "."],
    "us.[230]": ["us.[230", "]"],
    "self._x": ["self._x"],
}


@pytest.mark.parametrize(("chunk", "tokens"), list(CASES.items()))
def test_dt_words_split_like_spacy(chunk: str, tokens: list[str]) -> None:
    got = pl.select(dt_words(pl.lit(chunk)).alias("t"))["t"].to_list()[0]
    assert got == tokens
    assert pl.select(dt_word_count(pl.lit(chunk)))[0, 0] == len(tokens)


def test_cases_match_spacy() -> None:
    spacy = pytest.importorskip("spacy")
    nlp = spacy.blank("en")
    for chunk, tokens in CASES.items():
        assert [t.text for t in nlp.tokenizer(chunk)] == tokens, chunk


def test_dt_words_whole_text() -> None:
    text = "It's a well-known fact.\nDon't panic (really)!"
    got = pl.select(dt_words(pl.lit(text)).alias("t"))["t"].to_list()[0]
    assert got == ["It", "'s", "a", "well", "-", "known", "fact", ".", "Do", "n't", "panic", "(", "really", ")", "!"]


def _find_all_duplicate(words: list[str], n: int) -> int:
    """datatrove 0.10 ``gopher_repetition_filter.find_all_duplicate``, restated as the test's oracle."""
    seen, chars, i = set(), 0, 0
    while i < len(words) - n + 1:
        gram = "".join(words[i : i + n])
        if gram in seen:
            chars += len(gram)
            i += n
        else:
            seen.add(gram)
            i += 1
    return chars


def test_dup_ngram_scan_skips_jumped_over_ngrams() -> None:
    # n = 5: "aa bb cc dd ee" repeats at word 5 (counted, jump to word 10), so "bb cc dd ee ff" at
    # word 6 is never added to the seen set and its copy at word 12 is not a repeat; reading
    # "repeat = seen at any earlier position" would count it too.
    text = "aa bb cc dd ee aa bb cc dd ee ff gg bb cc dd ee ff"
    words = text.split()
    assert _find_all_duplicate(words, 5) == len("aabbccddee")
    cfg = FilterConfig(definitions="datatrove", families=["gopher_repetition"])
    s = compute_stats(_docs([text]), cfg).row(0, named=True)
    assert s["rep_dup5gram_frac"] == pytest.approx(len("aabbccddee") / len(text))
    long = " ".join(_uniq_words(30) * 2 + ["x", "y"] + _uniq_words(12, seed=3) * 3)
    cfg = FilterConfig(definitions="datatrove", families=["gopher_repetition"])
    s = compute_stats(_docs([long]), cfg).row(0, named=True)
    for n in range(5, 11):
        assert s[f"rep_dup{n}gram_frac"] == pytest.approx(_find_all_duplicate(long.split(), n) / len(long))


def test_fineweb_line_punct_bound_datatrove_vs_paper() -> None:
    # 25 long lines, 3 end in "." -> 0.12 exactly: datatrove keeps (ratio < 0.12 drops), the paper drops (<=)
    text = "\n".join(f"line {i:02d} with enough characters to be long" + ("." if i < 3 else "") for i in range(25))
    only = [r for r in RULE_NAMES if r != "fineweb_line_punct"]
    for definitions, kept in (("datatrove", 1), ("paper", 0)):
        cfg = FilterConfig(families=["fineweb"], disabled_rules=only, definitions=definitions)
        assert apply_filters(_docs([text]), cfg).kept.height == kept, definitions
    two = "\n".join(f"line {i:02d} with enough characters to be long" + ("." if i < 2 else "") for i in range(25))
    cfg = FilterConfig(families=["fineweb"], disabled_rules=only, definitions="datatrove")
    assert apply_filters(_docs([two]), cfg).rejected["reason"].to_list() == ["fineweb_line_punct_frac<0.12"]


def test_fineweb_terminal_punct_datatrove_has_no_closing_quote() -> None:
    line = 'He said "stop."'
    for definitions, frac in (("datatrove", 0.0), ("paper", 1.0)):
        cfg = FilterConfig(families=["fineweb"], definitions=definitions)
        assert compute_stats(_docs([line]), cfg)["fineweb_line_punct_frac"][0] == frac
