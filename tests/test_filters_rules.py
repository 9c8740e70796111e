"""The rule table is the filter's only declaration of its rules: names, reasons, columns, order, dtypes."""

from __future__ import annotations

import json
from typing import get_args

import polars as pl
import pytest
from pydantic import ValidationError

from pipeline.filters import rules
from pipeline.filters.compute import compute
from pipeline.filters.config import DEFINITIONS, DefinitionsName
from pipeline.filters.rules import RULES, STATISTICS, Family, Rule
from pipeline.filters.stage import (
    FAMILIES,
    RULE_NAMES,
    STAT_COLUMNS,
    FilterConfig,
    apply_filters,
    compute_stats,
    rule_failures,
    rule_table,
)
from tests.test_filters import _docs, _good_text, _uniq_words

ALL = list(FAMILIES)
SOURCE_OF_FAMILY = {"code": "code", "book": "book"}  # the source whose rows a family judges (else "web")


def _batch() -> pl.DataFrame:
    """Rows of every source, with content every family has something to measure on."""
    prose = _good_text(200) + "\nA closing line of the page with enough words in it."
    code = "def f(x):\n    return x + 1\n\n\nclass A:\n    pass\n"
    return pl.concat(
        [
            _docs([prose, "Short line.\nAnother one here."], "web"),
            _docs([prose.upper() + "\n" + prose], "book").with_columns(id=pl.lit("b0")),
            _docs([code], "code", metas=[{"minified": True}]).with_columns(id=pl.lit("c0")),
        ]
    )


# ---------------------------------------------------------------------------------------------
# one declaration


@pytest.mark.parametrize("definitions", get_args(DefinitionsName))
@pytest.mark.parametrize("rule", RULES, ids=lambda r: f"{r.name}-{r.field}")
def test_every_rules_statistic_is_computed_for_its_family(rule: Rule, definitions: str) -> None:
    # with only the rule's family on, the statistic it reads has a value on the rows it judges
    cfg = FilterConfig(families=[rule.family], definitions=definitions)
    s = compute(_batch(), cfg)
    source = rule.only_source or SOURCE_OF_FAMILY.get(rule.family, "web")
    judged = s.filter(pl.col("source") == source)[rule.stat]
    assert judged.null_count() == 0, f"{rule.stat} not computed for family {rule.family} ({source} rows)"
    assert judged.dtype == rules.stat_dtype(rule.stat)


def test_every_rules_field_exists_on_filter_config() -> None:
    fields = FilterConfig.model_fields
    default = FilterConfig()
    for r in RULES:
        assert r.field in fields, f"{r.name}: FilterConfig has no field {r.field!r}"
        value = getattr(default, r.field)
        if r.op == "flag":
            assert isinstance(value, bool), f"{r.name}: a flag rule is switched by a bool field"
        if r.key is not None:
            assert isinstance(value, dict) and r.key in value, f"{r.name}: {r.field} has no default for {r.key}"
        else:
            assert not isinstance(value, dict), f"{r.name}: {r.field} is per-n, the rule needs its key"


def test_statistics_are_declared_and_read_or_informational() -> None:
    declared = [s.name for s in STATISTICS]
    assert len(declared) == len(set(declared)), "a statistic is declared twice"
    read = {r.stat for r in RULES}
    assert read <= set(declared), f"rules read undeclared statistics: {read - set(declared)}"
    for s in STATISTICS:
        if s.name in read:
            assert s.informational is None, f"{s.name} is read by a rule but marked informational"
        else:
            assert s.informational, f"{s.name} has no rule: say why it is kept (informational=...)"
    assert [s.name for s in STATISTICS if s.informational] == ["c4_removed_lines_frac"]


@pytest.mark.parametrize("definitions", get_args(DefinitionsName))
def test_compute_stats_adds_exactly_the_declared_columns_with_their_dtypes(definitions: str) -> None:
    df = _batch()
    s = compute_stats(df, FilterConfig(families=ALL, definitions=definitions))
    added = [c for c in s.columns if c not in df.columns]
    assert sorted(added) == sorted(STAT_COLUMNS), "a family computes a column the table does not declare"
    assert {c: s.schema[c] for c in added} == {c: rules.stat_dtype(c) for c in STAT_COLUMNS}
    # a family that is off leaves its columns null, with the same dtypes
    off = compute_stats(df, FilterConfig(families=["code"], definitions=definitions))
    assert {c: off.schema[c] for c in STAT_COLUMNS} == {c: rules.stat_dtype(c) for c in STAT_COLUMNS}
    assert off["gopher_word_count"].null_count() == off.height


def test_names_and_columns_are_the_tables() -> None:
    assert RULE_NAMES == list(dict.fromkeys(r.name for r in RULES))
    assert STAT_COLUMNS == [s.name for s in STATISTICS if s.column]
    # the hidden statistics (code meta flags) are read by rules but never kept on the documents
    hidden = [s.name for s in STATISTICS if not s.column]
    assert hidden and set(hidden) <= {r.stat for r in RULES}
    kept = apply_filters(_batch(), FilterConfig(families=ALL)).kept
    assert not set(hidden) & set(kept.columns)


def test_families_and_definitions_are_declared_once() -> None:
    assert FAMILIES == get_args(Family)
    assert {r.family for r in RULES} <= set(FAMILIES)
    assert FilterConfig(families=ALL).families == ALL
    with pytest.raises(ValidationError):
        FilterConfig(families=["gopher_quality", "no_such_family"])  # type: ignore[list-item]
    assert set(DEFINITIONS) == set(get_args(DefinitionsName))
    for name in DEFINITIONS:
        assert FilterConfig(definitions=name).reading is DEFINITIONS[name]


@pytest.mark.parametrize("definitions", get_args(DefinitionsName))
def test_rule_table_lists_the_tables_rules_in_order(definitions: str) -> None:
    cfg = FilterConfig(families=ALL, definitions=definitions, max_top_ngram_frac={2: 0.2, 3: None, 4: 0.16})
    listed = rule_table(cfg)
    expected = [r for r in RULES if r.threshold(cfg) is not None]
    assert [(x["name"], x["stat"], x["family"]) for x in listed] == [(r.name, r.stat, r.family) for r in expected]
    assert [x["threshold"] for x in listed] == [r.threshold(cfg) for r in expected]
    assert "rep_top3gram" not in {x["name"] for x in listed}  # a None threshold switches the rule off
    strict = {"<=": "<", ">=": ">"}
    for x, r in zip(listed, expected, strict=True):
        want = strict.get(r.op, r.op) if definitions == "datatrove" and r.family == "fineweb" else r.op
        assert x["op"] == want, x


def test_reasons_are_the_first_failing_rule_of_the_table() -> None:
    # Rows failing several rules: apply_filters' reason is the first failing rule in table order, and
    # the reason text is "<stat><op><threshold>" (the statistic's name for a flag).
    good = _good_text()
    texts = [
        "too short",  # also fails the stop words and C4
        " ".join(_uniq_words(80)),  # no stop words (and no sentence)
        good + "\n" + "\n".join([good.splitlines()[0]] * 10),  # repeated lines
        good + "\nthe value of x is {1} and that is all.",  # a curly bracket in a kept line
        good.replace(".", ""),  # no sentence left after C4's line removal
        good,
    ]
    code = ["x = 1\n" * 20, "x = 1\n" * 20, "y = '" + "a" * 1200 + "'\n"]
    df = pl.concat(
        [
            _docs(texts, "web"),
            _docs(code, "code", metas=[{"minified": True}, {}, {}]).with_columns(id=pl.Series(["c0", "c1", "c2"])),
        ]
    )
    cfg = FilterConfig(families=["gopher_quality", "gopher_repetition", "c4", "code"])
    res = apply_filters(df, cfg)
    fails = rule_failures(compute_stats(df, cfg), cfg).with_columns(id=df["id"])
    active = rule_table(cfg)
    want = {}
    for row in fails.iter_rows(named=True):
        first = next((r for r in active if row[r["name"]]), None)
        if first is not None:
            op, thr = first["op"], first["threshold"]
            want[row["id"]] = first["stat"] if op == "flag" else f"{first['stat']}{op}{thr}"
    got = dict(zip(res.rejected["id"], res.rejected["reason"], strict=True))
    assert got == want
    assert sorted(set(got.values())) == [
        "c4_curly_bracket",
        "c4_sentences<5",
        "code_max_line_len>1000",
        "code_minified",
        "gopher_stop_words<2",
        "gopher_word_count<50",
        "rep_dup_line_frac>0.3",
    ]


# ---------------------------------------------------------------------------------------------
# adding a rule in one place


class _DemoConfig(FilterConfig):
    max_words_demo: int | None = 100  # the new rule's threshold field


_DEMO = Rule("gopher_max_words_demo", "gopher_word_count", ">", "max_words_demo")


def test_a_rule_added_to_the_table_rejects_and_is_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    df = _docs([_good_text(80), " ".join(_uniq_words(150)) + " the and of to the and."])
    cfg = _DemoConfig(min_stop_words=None)
    assert apply_filters(df, cfg).rejected.height == 0  # without the rule, both rows pass
    monkeypatch.setattr(rules, "RULES", (*rules.RULES, _DEMO))

    res = apply_filters(df, cfg)
    assert res.kept["id"].to_list() == ["d0"]
    assert res.rejected["reason"].to_list() == ["gopher_word_count>100"]
    assert json.loads(res.rejected["detail"][0]) == {"gopher_word_count": 156}
    assert res.stats["dropped_by_rule"] == {"gopher_word_count>100": 1}
    listed = rule_table(cfg)
    assert listed[-1] == {
        "name": "gopher_max_words_demo",
        "stat": "gopher_word_count",
        "op": ">",
        "threshold": 100,
        "family": "gopher_quality",
        "only_source": None,
        "skip_source": None,
    }
    assert rule_failures(compute_stats(df, cfg), cfg)["gopher_max_words_demo"].to_list() == [False, True]
    # its threshold field switches it as any other: None is off, another value moves the bound
    assert apply_filters(df, _DemoConfig(min_stop_words=None, max_words_demo=None)).rejected.height == 0
    assert apply_filters(df, _DemoConfig(min_stop_words=None, max_words_demo=60)).rejected.height == 2
    # the table's order is the evaluation order: first in the table, it is the reason before the others
    monkeypatch.setattr(rules, "RULES", (_DEMO, *rules.RULES[:-1]))
    short = _docs([" ".join(_uniq_words(150))])  # too many words for the demo rule, no stop words
    assert apply_filters(short, _DemoConfig()).rejected["reason"].to_list() == ["gopher_word_count>100"]
    monkeypatch.setattr(rules, "RULES", (*rules.RULES[1:], _DEMO))
    assert apply_filters(short, _DemoConfig()).rejected["reason"].to_list() == ["gopher_stop_words<2"]


def test_no_helper_column_leaks_when_every_ngram_threshold_is_off() -> None:
    import polars as pl

    from pipeline.filters.stage import FilterConfig, apply_filters, compute_stats

    cfg = FilterConfig(families=["gopher_repetition"], max_top_ngram_frac={}, max_dup_ngram_frac={})
    docs = pl.DataFrame({"id": ["a", "b"], "source": ["web", "web"], "text": ["one two three\nfour", "x y z"]})
    stats = compute_stats(docs, cfg)
    assert not [c for c in stats.columns if c.startswith("__")]
    result = apply_filters(docs, cfg)
    assert not [c for c in result.kept.columns if c.startswith("__")]
