"""The filter rule table: every statistic and every rule of the filter stage, each declared once.

``RULES`` lists the rules in evaluation order (a rejected row's reason is the first rule it fails). A
rule reads one statistic, compares it with one ``FilterConfig`` field and belongs to one family.
``STATISTICS`` lists the statistics the family modules compute, with their dtypes, in column order
(``STAT_COLUMNS``; the columns of the families that are off are filled, as nulls, in this order). It is
a list of its own because several rules read one statistic, a statistic may have no rule (it says
why: ``informational``), and the column order is not the evaluation order.

Everything else is derived from the two: ``RULE_NAMES`` (the switches of ``disabled_rules``),
``STAT_COLUMNS``, the rejection reasons (``"<stat><op><threshold>"``, or the statistic's name for a
flag), the detail's formatting, the enabled rules of a config (``active_rules``; ``stage.rule_table``
lists them for ``refinery preview``) and which n-gram passes run.

Adding a rule: one ``Rule`` in ``RULES`` (plus its ``FilterConfig`` field, unless it reads one that
exists); a rule on a new statistic also needs the ``Statistic`` entry and its computation in the
family's module (``prose.py``, ``repetition.py``, ``lines.py``, ``book.py``, ``code.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

import polars as pl

if TYPE_CHECKING:
    from pipeline.filters.config import FilterConfig

# Rule families, in the order the datatrove-like pipelines run them (``FilterConfig.families``).
Family = Literal["gopher_quality", "gopher_repetition", "c4", "fineweb", "refinedweb", "code", "book"]
FAMILIES: tuple[Family, ...] = get_args(Family)

# Fails when ``statistic <op> threshold``; "flag" fails when the (boolean) statistic is true.
Op = Literal["<", ">", "<=", ">=", "flag"]

# The n of Gopher's n-gram repetition statistics: most frequent n-gram (2..4), duplicated n-grams (5..10).
TOP_NS = (2, 3, 4)
DUP_NS = (5, 6, 7, 8, 9, 10)

INT, FLOAT, BOOL = pl.Int64, pl.Float64, pl.Boolean


@dataclass(frozen=True)
class Statistic:
    """One statistic the filter computes per document."""

    name: str
    dtype: type[pl.DataType]
    # Why no rule reads it (a statistic without a rule must say so; it is kept for reports and previews).
    informational: str | None = None
    # False: read by rules but not kept on the documents (the code reader's meta flags).
    column: bool = True


STATISTICS: tuple[Statistic, ...] = (
    # Gopher quality (pipeline.filters.prose)
    Statistic("gopher_word_count", INT),
    Statistic("gopher_mean_word_length", FLOAT),
    Statistic("gopher_symbol_ratio", FLOAT),
    Statistic("gopher_bullet_lines_frac", FLOAT),
    Statistic("gopher_ellipsis_lines_frac", FLOAT),
    Statistic("gopher_alpha_words_frac", FLOAT),
    Statistic("gopher_stop_words", INT),
    # Gopher repetition: lines and paragraphs (pipeline.filters.prose), n-grams (pipeline.filters.repetition)
    Statistic("rep_dup_line_frac", FLOAT),
    Statistic("rep_dup_line_char_frac", FLOAT),
    Statistic("rep_dup_para_frac", FLOAT),
    Statistic("rep_dup_para_char_frac", FLOAT),
    *(Statistic(f"rep_top{n}gram_frac", FLOAT) for n in TOP_NS),
    *(Statistic(f"rep_dup{n}gram_frac", FLOAT) for n in DUP_NS),
    # C4, FineWeb, RefinedWeb (pipeline.filters.lines)
    Statistic("c4_sentences", INT),
    Statistic("c4_lorem_ipsum", BOOL),
    Statistic("c4_curly_bracket", BOOL),
    Statistic("c4_removed_lines_frac", FLOAT, informational="share of lines C4 line removal dropped"),
    Statistic("fineweb_line_punct_frac", FLOAT),
    Statistic("fineweb_dup_line_char_frac", FLOAT),
    Statistic("fineweb_short_line_frac", FLOAT),
    Statistic("fineweb_newline_ratio", FLOAT),
    Statistic("refinedweb_removed_words_frac", FLOAT),
    # books (pipeline.filters.book), code (pipeline.filters.code)
    Statistic("book_upper_lines_frac", FLOAT),
    Statistic("code_max_line_len", INT),
    Statistic("code_mean_line_len", FLOAT),
    Statistic("code_alnum_frac", FLOAT),
    Statistic("code_minified", BOOL, column=False),
    Statistic("code_generated", BOOL, column=False),
    Statistic("code_lockfile", BOOL, column=False),
)


@dataclass(frozen=True)
class Rule:
    """One rule: the row fails when ``stat <op> threshold``; the threshold is ``FilterConfig.<field>``
    (``[key]`` of it for a per-n dict, a bool switch for a flag); ``None`` switches the rule off."""

    name: str  # switch name, for ``disabled_rules``
    stat: str  # the statistic it reads
    op: Op
    field: str  # the FilterConfig field holding the threshold
    family: Family = "gopher_quality"
    key: int | None = None  # the n of a per-n threshold dict
    only_source: str | None = None  # judge rows of this source only
    skip_source: str | None = None  # never judge rows of this source

    def threshold(self, cfg: FilterConfig) -> float | int | None:
        value = getattr(cfg, self.field)
        if self.key is not None:
            value = value.get(self.key)
        if self.op == "flag":
            return 1 if value else None
        return value


# Evaluation order: a rejected row's reason is the first rule that fails.
RULES: tuple[Rule, ...] = (
    # Gopher quality (Rae et al. 2021, appendix A)
    Rule("gopher_min_words", "gopher_word_count", "<", "min_words"),
    Rule("gopher_max_words", "gopher_word_count", ">", "max_words", skip_source="book"),
    Rule("gopher_max_words", "gopher_word_count", ">", "book_max_words", only_source="book"),
    Rule("gopher_min_mean_word_length", "gopher_mean_word_length", "<", "min_mean_word_length"),
    Rule("gopher_max_mean_word_length", "gopher_mean_word_length", ">", "max_mean_word_length"),
    Rule("gopher_symbol_ratio", "gopher_symbol_ratio", ">", "max_symbol_word_ratio"),
    Rule("gopher_bullet_lines", "gopher_bullet_lines_frac", ">", "max_bullet_lines_frac"),
    Rule("gopher_ellipsis_lines", "gopher_ellipsis_lines_frac", ">", "max_ellipsis_lines_frac"),
    Rule("gopher_alpha_words", "gopher_alpha_words_frac", "<", "min_alpha_words_frac"),
    Rule("gopher_stop_words", "gopher_stop_words", "<", "min_stop_words"),
    # Gopher repetition (Rae et al. 2021, table A1)
    Rule("rep_dup_line", "rep_dup_line_frac", ">", "max_dup_line_frac", "gopher_repetition"),
    Rule("rep_dup_para", "rep_dup_para_frac", ">", "max_dup_para_frac", "gopher_repetition"),
    Rule("rep_dup_line_char", "rep_dup_line_char_frac", ">", "max_dup_line_char_frac", "gopher_repetition"),
    Rule("rep_dup_para_char", "rep_dup_para_char_frac", ">", "max_dup_para_char_frac", "gopher_repetition"),
    *(
        Rule(f"rep_top{n}gram", f"rep_top{n}gram_frac", ">", "max_top_ngram_frac", "gopher_repetition", key=n)
        for n in TOP_NS
    ),
    *(
        Rule(f"rep_dup{n}gram", f"rep_dup{n}gram_frac", ">", "max_dup_ngram_frac", "gopher_repetition", key=n)
        for n in DUP_NS
    ),
    # C4 page rules (Raffel et al. 2020)
    Rule("c4_lorem_ipsum", "c4_lorem_ipsum", "flag", "c4_reject_lorem_ipsum", "c4"),
    Rule("c4_curly_bracket", "c4_curly_bracket", "flag", "c4_reject_curly_bracket", "c4"),
    Rule("c4_min_sentences", "c4_sentences", "<", "c4_min_sentences", "c4"),
    # RefinedWeb (Penedo et al. 2023)
    Rule(
        "refinedweb_removed_words",
        "refinedweb_removed_words_frac",
        ">",
        "refinedweb_max_removed_words_frac",
        "refinedweb",
    ),
    # FineWeb (Penedo et al. 2024); the paper's bounds are inclusive (datatrove's are strict: see datatrove.py)
    Rule("fineweb_line_punct", "fineweb_line_punct_frac", "<=", "fineweb_min_line_punct_frac", "fineweb"),
    Rule("fineweb_short_lines", "fineweb_short_line_frac", ">=", "fineweb_max_short_line_frac", "fineweb"),
    Rule("fineweb_dup_line_chars", "fineweb_dup_line_char_frac", ">=", "fineweb_max_dup_line_char_frac", "fineweb"),
    Rule("fineweb_newline_ratio", "fineweb_newline_ratio", ">", "fineweb_max_newline_ratio", "fineweb"),
    # books (ours)
    Rule("book_min_words", "gopher_word_count", "<", "book_min_words", "book", only_source="book"),
    Rule("book_upper_lines", "book_upper_lines_frac", ">", "book_max_upper_lines_frac", "book", only_source="book"),
    # code (StarCoder / The Stack)
    Rule("code_minified", "code_minified", "flag", "code_reject_minified", "code"),
    Rule("code_generated", "code_generated", "flag", "code_reject_generated", "code"),
    Rule("code_lockfile", "code_lockfile", "flag", "code_reject_lockfile", "code"),
    Rule("code_max_line_len", "code_max_line_len", ">", "code_max_line_len", "code"),
    Rule("code_mean_line_len", "code_mean_line_len", ">", "code_max_mean_line_len", "code"),
    Rule("code_alnum_frac", "code_alnum_frac", "<", "code_min_alnum_frac", "code"),
)

RULE_NAMES: list[str] = list(dict.fromkeys(r.name for r in RULES))
STAT_COLUMNS: list[str] = [s.name for s in STATISTICS if s.column]
HIDDEN_STATS: tuple[str, ...] = tuple(s.name for s in STATISTICS if not s.column)  # dropped from the output


def stat_dtype(name: str) -> pl.DataType:
    """The declared dtype of statistic ``name``."""
    for s in STATISTICS:
        if s.name == name:
            return s.dtype()
    raise KeyError(f"{name!r} is not in STATISTICS")


@dataclass(frozen=True)
class ActiveRule:
    """A rule as one config runs it: its comparison and threshold resolved."""

    name: str
    stat: str
    op: Op
    threshold: float | int
    family: Family
    only_source: str | None
    skip_source: str | None

    @property
    def reason(self) -> str:
        if self.op == "flag":
            return self.stat
        return f"{self.stat}{self.op}{self.threshold}"


def active_rules(cfg: FilterConfig) -> list[ActiveRule]:
    """The enabled rules of ``cfg``, in evaluation order: threshold set, not disabled, family on."""
    off, fams, reading = set(cfg.disabled_rules), set(cfg.families), cfg.reading
    out = []
    for r in RULES:
        t = r.threshold(cfg)
        if t is not None and r.name not in off and r.family in fams:
            out.append(ActiveRule(r.name, r.stat, reading.op(r), t, r.family, r.only_source, r.skip_source))
    return out


def fail_expr(rule: ActiveRule) -> pl.Expr:
    """True where the row fails ``rule`` (a null statistic never fails: the family did not judge the row)."""
    col = pl.col(rule.stat)
    if rule.op == "flag":
        cond = col.fill_null(False)
    elif rule.op == "<":
        cond = (col < rule.threshold).fill_null(False)
    elif rule.op == "<=":
        cond = (col <= rule.threshold).fill_null(False)
    elif rule.op == ">=":
        cond = (col >= rule.threshold).fill_null(False)
    else:
        cond = (col > rule.threshold).fill_null(False)
    if rule.only_source is not None:
        cond = cond & (pl.col("source") == rule.only_source)
    if rule.skip_source is not None:
        cond = cond & (pl.col("source") != rule.skip_source)
    return cond


def detail_expr(rule: ActiveRule) -> pl.Expr:
    """``{"stat": value}`` as JSON text: the statistic that made ``rule`` fail."""
    value = pl.col(rule.stat)
    dtype = stat_dtype(rule.stat)
    if dtype == pl.Boolean or rule.op == "flag":
        shown = pl.when(value.fill_null(False)).then(pl.lit("true")).otherwise(pl.lit("false"))
    elif dtype == pl.Int64:
        shown = value.cast(pl.String)
    else:
        shown = value.round(6).cast(pl.String)
    return pl.concat_str([pl.lit(f'{{"{rule.stat}": '), shown.fill_null("null"), pl.lit("}")])
