"""Heuristic quality filter (stage ``"filter"``).

Rule families (``FilterConfig.families``; each writes its statistics as columns, so ``refinery preview``
can try a threshold before it is applied): Gopher quality and repetition (Rae et al. 2021, appendix A),
C4 line removal and page rules (Raffel et al. 2020, section 2.2), FineWeb's rules (Penedo et al. 2024),
RefinedWeb line-wise corrections (Penedo et al. 2023, appendix G.2), book rules (ours), and code rules
following the StarCoder / The Stack preprocessing. C4 and RefinedWeb rewrite the text of kept rows;
FineWeb judges the rewritten text (as in datatrove, where it runs after C4). ``definitions="datatrove"``
switches the Gopher and FineWeb definitions to datatrove 0.10's reading, for like-for-like benchmarks (words:
``pipeline.filters.datatrove_words``, a regex mirror of the spaCy tokenizer datatrove uses). Every statistic is
computed with polars expressions over the whole batch (list ops, explode + group_by on a row index),
never with a per-document Python loop: that is where the throughput comes from.

Definitions (where the paper leaves room, we say what we do):

* words = whitespace split (``\\S+`` runs). ``gopher_word_count`` and ``gopher_mean_word_length``
  count only words with at least one character that is not punctuation/symbol (as datatrove does).
* ``gopher_symbol_ratio`` = max(#'#', #'...'+#'…') / words: one statistic for the two symbol rules.
* bullet / ellipsis line fractions are over non-blank lines.
* ``gopher_stop_words`` counts occurrences (lowercased, surrounding punctuation stripped) of the
  Gopher stop words; the rule needs at least 2.
* duplicate line / paragraph fractions: lines are ``\\n``-separated, paragraphs are separated by a
  blank line; both are stripped, blank ones dropped. ZeroToOne = (count - distinct) / count; the char
  fraction = chars in the repeated copies (all but the first occurrence) / chars of all lines (paras).
* ``rep_top{n}gram_frac`` (n=2..4): (occurrences x characters) of the most frequent word n-gram that
  occurs at least twice (ties: the longer one), over the document's word characters (whitespace not
  counted). Overlapping occurrences are all counted, as in the paper's definition.
* ``rep_dup{n}gram_frac`` (n=5..10): characters of the words covered by any n-gram occurring more than
  once in the document (all occurrences, overlaps counted once: the exact union of covered words,
  which is what the paper describes), over the document's word characters. N-grams are identified by
  a 64-bit hash chained over word hashes (collisions are negligible for this purpose).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipeline.bounds import MAX_DOC_CHARS, Float, Int, ZeroToOne, field_error
from pipeline.filters.blocklist import BlocklistConfig, blocklist_reason
from pipeline.filters.datatrove_words import dt_word_count, dt_words
from pipeline.schema import StageResult, to_rejected

STAGE = "filter"
_RI = "__filter_row"  # temporary row index used to join stats back

FAMILIES = ("gopher_quality", "gopher_repetition", "c4", "fineweb", "refinedweb", "code", "book")
Family = Literal["gopher_quality", "gopher_repetition", "c4", "fineweb", "refinedweb", "code", "book"]

# C4 reference code (TFDS c4_utils): terminal punctuation a kept line must end with; policy notices.
C4_END_PUNCT = (".", "?", "!", '"', "'")
C4_POLICY = ["terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies"]
_C4_CITATION = r"\[\d*\]|\[edit\]|\[citation needed\]"
# RefinedWeb: counters and short boilerplate lines (examples from the paper's appendix G.2).
_RW_COUNTER = r"(?i)^[\d.,]+[kKmM]?\s+(likes?|shares?|comments?|retweets?|repl(y|ies)|views?|followers?|votes?)$"
_RW_BOILER = (
    r"(?i)\b(sign[ -]?in|log[ -]?in|sign[ -]?up|read more|click here|share this|items? in (your )?cart"
    r"|all rights reserved|subscribe|newsletter|cookie)\b"
)

GOPHER_STOP_WORDS = ["the", "be", "to", "of", "and", "that", "have", "with"]

PROSE_STATS = [
    "gopher_word_count",
    "gopher_mean_word_length",
    "gopher_symbol_ratio",
    "gopher_bullet_lines_frac",
    "gopher_ellipsis_lines_frac",
    "gopher_alpha_words_frac",
    "gopher_stop_words",
    "rep_dup_line_frac",
    "rep_dup_line_char_frac",
    "rep_dup_para_frac",
    "rep_dup_para_char_frac",
    *[f"rep_top{n}gram_frac" for n in (2, 3, 4)],
    *[f"rep_dup{n}gram_frac" for n in range(5, 11)],
]
C4_STATS = ["c4_sentences", "c4_lorem_ipsum", "c4_curly_bracket", "c4_removed_lines_frac"]
FINEWEB_STATS = [
    "fineweb_line_punct_frac",
    "fineweb_dup_line_char_frac",
    "fineweb_short_line_frac",
    "fineweb_newline_ratio",
]
REFINEDWEB_STATS = ["refinedweb_removed_words_frac"]
BOOK_STATS = ["book_upper_lines_frac"]
CODE_STATS = ["code_max_line_len", "code_mean_line_len", "code_alnum_frac"]
STAT_COLUMNS = PROSE_STATS + C4_STATS + FINEWEB_STATS + REFINEDWEB_STATS + BOOK_STATS + CODE_STATS

_INT_STATS = {"gopher_word_count", "gopher_stop_words", "code_max_line_len", "c4_sentences"}
_BOOL_STATS = {"c4_lorem_ipsum", "c4_curly_bracket"}

# Characters that open a bullet-point line (Gopher does not list them; these cover the usual ones).
_DEFAULT_BULLETS = "•‣◦▪▫●○■□∙·-*–"
_NON_SYMBOL = r"[^\p{P}\p{S}]"  # a word counts as a word if it has one char that is not punct/symbol
# datatrove's reading: a char outside its PUNCTUATION_SET (datatrove.utils.text: ASCII and CJK marks,
# control chars, and its TERMINAL_PUNCTUATION, which is Unicode's Sentence_Terminal plus three Khmer signs)
_DT_NON_SYMBOL = (
    r"[^!/—”:％１〈&(、━\\【#%「」，】；+^\]~“《„';’{|∶´\[=\-`*．（–？！：$～«〉,><》)?）。…@_.\"}►»"
    r"\x00-\x08\x0b\x0c\r\x0e-\x1f\x7f-\x9f\p{Sentence_Terminal}៖៙៚]"
)


Words = Annotated[Int, Field(ge=0, le=MAX_DOC_CHARS)]  # words, sentences or stop words in one document
WordLength = Annotated[Float, Field(ge=0.0, le=MAX_DOC_CHARS)]  # characters
PerWord = Annotated[Float, Field(ge=0.0, le=MAX_DOC_CHARS)]  # a count per word, not a share: it can exceed 1


class FilterConfig(BaseModel):
    """Thresholds of the heuristic filter. ``None`` for a threshold switches that rule off."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    apply_prose_to: list[str] = Field(default_factory=lambda: ["web", "book", "other"])
    apply_code_to: list[str] = Field(default_factory=lambda: ["code"])
    # If set (and the batch has a ``lang`` column), prose rules only judge rows whose lang is listed:
    # the Gopher rules were tuned on English. None = every prose row.
    prose_langs: list[str] | None = None
    # Rule names (see ``RULE_NAMES``) to switch off without touching their thresholds.
    disabled_rules: list[str] = Field(default_factory=list)
    # "paper": our reading of the papers (see the module docstring). "datatrove": datatrove 0.10's
    # reading, for like-for-like comparison: words are its spaCy tokens (``pipeline.filters.datatrove_words``), a word
    # is a token with a char outside its PUNCTUATION_SET, stop words are distinct and case-sensitive,
    # blank lines count as lines, repetition fractions are over len(text), duplicated n-grams follow its
    # greedy scan (``find_all_duplicate``); FineWeb: a line ends in a sentence terminator (no closing
    # quote after it), bounds are strict (ratio < / > threshold), the list ratio is over spaCy tokens.
    definitions: Literal["paper", "datatrove"] = "paper"
    # Rule families to run (see ``FAMILIES``); a family's statistics are only computed when it is on.
    families: list[Family] = Field(default_factory=lambda: ["gopher_quality", "gopher_repetition", "code"])
    # Optional ingest blocklist (URL / domain), applied as the first rule when set.
    blocklist: BlocklistConfig | None = None

    # --- Gopher quality filters (Rae et al. 2021, appendix A) ---
    min_words: Words | None = Field(50, description="Gopher: 50 <= words")
    max_words: Words | None = Field(100_000, description="Gopher: words <= 100,000")
    book_max_words: Words | None = Field(None, description='upper bound for source "book" (None: books are long)')
    min_mean_word_length: WordLength | None = Field(3.0, description="Gopher: mean word length 3..10 characters")
    max_mean_word_length: WordLength | None = 10.0
    max_symbol_word_ratio: PerWord | None = Field(0.1, description="Gopher: '#' or ellipsis to word ratio <= 0.1")
    max_bullet_lines_frac: ZeroToOne | None = Field(0.9, description="Gopher: <= 90% of lines start with a bullet")
    max_ellipsis_lines_frac: ZeroToOne | None = Field(0.3, description="Gopher: <= 30% of lines end with an ellipsis")
    min_alpha_words_frac: ZeroToOne | None = Field(0.8, description="Gopher: >= 80% of words hold an alphabetic char")
    min_stop_words: Words | None = Field(2, description="Gopher: >= 2 of the stop words below")
    stop_words: list[str] = Field(default_factory=lambda: list(GOPHER_STOP_WORDS))
    bullet_chars: str = _DEFAULT_BULLETS

    # --- Gopher repetition removal (Rae et al. 2021, appendix A, table A1) ---
    max_dup_line_frac: ZeroToOne | None = 0.30
    max_dup_para_frac: ZeroToOne | None = 0.30
    max_dup_line_char_frac: ZeroToOne | None = 0.20
    max_dup_para_char_frac: ZeroToOne | None = 0.20
    # Keys are n, plain (not strict) ints: a JSON round trip of the recipe turns them into strings.
    max_top_ngram_frac: dict[Annotated[int, Field(ge=2, le=4)], ZeroToOne | None] = Field(
        default_factory=lambda: {2: 0.20, 3: 0.18, 4: 0.16},
        description="most frequent n-gram character fraction, n = 2, 3, 4: 0.20, 0.18, 0.16",
    )
    max_dup_ngram_frac: dict[Annotated[int, Field(ge=5, le=10)], ZeroToOne | None] = Field(
        default_factory=lambda: {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10},
        description="duplicated n-gram character fraction, n = 5..10: 0.15 .. 0.10",
    )

    # --- C4 (Raffel et al. 2020, "Exploring the Limits of Transfer Learning", section 2.2) ---
    # Line removal rewrites the text: a line survives if it ends in terminal punctuation (not an
    # ellipsis), has >= 3 words, no word > 1000 chars, and mentions neither "javascript" nor a policy
    # notice; citation markers ([1], [edit], [citation needed]) are cut first. Then page rules.
    c4_remove_lines: bool = True
    c4_remove_citations: bool = True
    c4_require_terminal_punct: bool = True
    # Both line tests are regexes (\S{n+1} and (?:\S+\s+){n-1}\S): above ~5,400 and ~3,900 they no
    # longer compile within polars' 10 MB regex size limit, hence the upper bounds.
    c4_min_words_per_line: Int | None = Field(
        3, ge=0, le=3000, description='C4: "only retained lines that contained at least 3 words"'
    )
    c4_max_word_length: Int | None = Field(
        1000, ge=1, le=5000, description="C4 reference code: lines with a word > 1000 chars dropped"
    )
    c4_drop_javascript_lines: bool = True  # C4: "removed any line with the word Javascript"
    c4_drop_policy_lines: bool = True  # C4: "terms of use", "privacy policy", "cookie policy", ...
    c4_min_sentences: Words | None = Field(5, description='C4: "discarded any page with fewer than 5 sentences"')
    c4_reject_lorem_ipsum: bool = True  # C4: "removed any page where the phrase 'lorem ipsum' appeared"
    c4_reject_curly_bracket: bool = True  # C4: "removed any pages that contained a curly bracket"

    # --- FineWeb (Penedo et al. 2024, "The FineWeb Datasets", section 3.4 custom filters) ---
    fineweb_min_line_punct_frac: ZeroToOne | None = Field(
        0.12, description="FineWeb: drop if <= 12% of lines end in punctuation"
    )
    fineweb_max_dup_line_char_frac: ZeroToOne | None = Field(
        0.1, description="FineWeb: drop if >= 10% of chars in duplicated lines"
    )
    fineweb_max_short_line_frac: ZeroToOne | None = Field(
        0.67, description="FineWeb: drop if >= 67% of lines are short"
    )
    fineweb_short_line_len: Int = Field(
        30, ge=1, le=MAX_DOC_CHARS, description="FineWeb: a short line has fewer than 30 chars"
    )
    # datatrove's FineWeb filter also drops list-like pages (not in the paper).
    fineweb_max_newline_ratio: PerWord | None = Field(0.3, description="drop if newlines / words > this")

    # --- RefinedWeb line-wise corrections (Penedo et al. 2023, "The RefinedWeb Dataset", appendix G.2) ---
    # Lines that are mostly upper case, only digits, a counter ("3 likes"), a single word, or a short
    # navigation/boilerplate line are removed; if they held > 5% of the words, the page is dropped.
    refinedweb_max_removed_words_frac: ZeroToOne | None = 0.05
    refinedweb_upper_frac: ZeroToOne = Field(0.5, description='"mainly composed of uppercase characters"')
    refinedweb_short_line_words: Words = Field(10, description="boilerplate patterns only remove lines this short")

    # --- Books (our rules; PG-19 / Books3 publish no heuristic thresholds, so these are ours) ---
    book_min_words: Words | None = Field(1000, description='a "book" under ~4 pages is a fragment, table or licence')
    book_max_upper_lines_frac: ZeroToOne | None = Field(
        0.4, description="mostly-capitals pages: indexes, tables of contents"
    )

    # --- Code (StarCoder / The Stack, Li et al. 2023; Kocetkov et al. 2022) ---
    code_max_line_len: Int | None = Field(
        1000, ge=1, le=MAX_DOC_CHARS, description="StarCoder: max line length <= 1000"
    )
    code_max_mean_line_len: Float | None = Field(
        100.0, gt=0.0, le=MAX_DOC_CHARS, description="StarCoder: mean line length <= 100"
    )
    code_min_alnum_frac: ZeroToOne | None = Field(0.25, description="StarCoder: alphanumeric fraction >= 0.25")
    code_reject_minified: bool = True  # meta flags set by the code reader
    code_reject_generated: bool = True
    code_reject_lockfile: bool = True

    @model_validator(mode="after")
    def _ranges(self) -> FilterConfig:
        # A lower bound above its upper bound rejects every document both rules judge (when both run).
        pairs = [  # (lower field, its rule, upper field, its rule)
            ("min_words", "gopher_min_words", "max_words", "gopher_max_words"),
            ("min_words", "gopher_min_words", "book_max_words", "gopher_max_words"),
            ("book_min_words", "book_min_words", "book_max_words", "gopher_max_words"),
            (
                "min_mean_word_length",
                "gopher_min_mean_word_length",
                "max_mean_word_length",
                "gopher_max_mean_word_length",
            ),
        ]
        active = {r.name for r in _rules(self)}
        for lo, lo_rule, hi, hi_rule in pairs:
            a, b = getattr(self, lo), getattr(self, hi)
            if a is not None and b is not None and a > b and {lo_rule, hi_rule} <= active:
                raise field_error(lo, f"{lo}={a} is above {hi}={b}: every document would be rejected", a)
        return self

    @field_validator("disabled_rules")
    @classmethod
    def _known_rules(cls, v: list[str]) -> list[str]:
        unknown = sorted(set(v) - set(RULE_NAMES))
        if unknown:
            raise ValueError(f"unknown rules {unknown}; known: {RULE_NAMES}")
        return v


@dataclass(frozen=True)
class _Rule:
    name: str  # switch name, for ``disabled_rules``
    stat: str  # column it reads (or a flag name for meta rules)
    op: Literal["<", ">", "<=", ">=", "flag"]
    threshold: float | int | None
    only_source: str | None = None  # restrict to one source
    skip_source: str | None = None  # never apply to this source
    family: str = "gopher_quality"

    @property
    def reason(self) -> str:
        if self.op == "flag":
            return self.stat
        return f"{self.stat}{self.op}{self.threshold}"


# Fixed evaluation order: a rejected row's reason is the first rule that fails.
RULE_NAMES = [
    "gopher_min_words",
    "gopher_max_words",
    "gopher_min_mean_word_length",
    "gopher_max_mean_word_length",
    "gopher_symbol_ratio",
    "gopher_bullet_lines",
    "gopher_ellipsis_lines",
    "gopher_alpha_words",
    "gopher_stop_words",
    "rep_dup_line",
    "rep_dup_para",
    "rep_dup_line_char",
    "rep_dup_para_char",
    *[f"rep_top{n}gram" for n in (2, 3, 4)],
    *[f"rep_dup{n}gram" for n in range(5, 11)],
    "c4_lorem_ipsum",
    "c4_curly_bracket",
    "c4_min_sentences",
    "refinedweb_removed_words",
    "fineweb_line_punct",
    "fineweb_short_lines",
    "fineweb_dup_line_chars",
    "fineweb_newline_ratio",
    "book_min_words",
    "book_upper_lines",
    "code_minified",
    "code_generated",
    "code_lockfile",
    "code_max_line_len",
    "code_mean_line_len",
    "code_alnum_frac",
]


def _rules(cfg: FilterConfig) -> list[_Rule]:
    """The enabled rules, in evaluation order."""
    gr, cd, fw = "gopher_repetition", "code", "fineweb"
    # FineWeb's paper bounds are inclusive; datatrove's FineWebQualityFilter drops on ratio < / > threshold
    lo, hi = ("<", ">") if cfg.definitions == "datatrove" else ("<=", ">=")
    r = [
        _Rule("gopher_min_words", "gopher_word_count", "<", cfg.min_words),
        _Rule("gopher_max_words", "gopher_word_count", ">", cfg.max_words, skip_source="book"),
        _Rule("gopher_max_words", "gopher_word_count", ">", cfg.book_max_words, only_source="book"),
        _Rule("gopher_min_mean_word_length", "gopher_mean_word_length", "<", cfg.min_mean_word_length),
        _Rule("gopher_max_mean_word_length", "gopher_mean_word_length", ">", cfg.max_mean_word_length),
        _Rule("gopher_symbol_ratio", "gopher_symbol_ratio", ">", cfg.max_symbol_word_ratio),
        _Rule("gopher_bullet_lines", "gopher_bullet_lines_frac", ">", cfg.max_bullet_lines_frac),
        _Rule("gopher_ellipsis_lines", "gopher_ellipsis_lines_frac", ">", cfg.max_ellipsis_lines_frac),
        _Rule("gopher_alpha_words", "gopher_alpha_words_frac", "<", cfg.min_alpha_words_frac),
        _Rule("gopher_stop_words", "gopher_stop_words", "<", cfg.min_stop_words),
        _Rule("rep_dup_line", "rep_dup_line_frac", ">", cfg.max_dup_line_frac, family=gr),
        _Rule("rep_dup_para", "rep_dup_para_frac", ">", cfg.max_dup_para_frac, family=gr),
        _Rule("rep_dup_line_char", "rep_dup_line_char_frac", ">", cfg.max_dup_line_char_frac, family=gr),
        _Rule("rep_dup_para_char", "rep_dup_para_char_frac", ">", cfg.max_dup_para_char_frac, family=gr),
        *[
            _Rule(f"rep_top{n}gram", f"rep_top{n}gram_frac", ">", cfg.max_top_ngram_frac.get(n), family=gr)
            for n in (2, 3, 4)
        ],
        *[
            _Rule(f"rep_dup{n}gram", f"rep_dup{n}gram_frac", ">", cfg.max_dup_ngram_frac.get(n), family=gr)
            for n in range(5, 11)
        ],
        _Rule("c4_lorem_ipsum", "c4_lorem_ipsum", "flag", 1 if cfg.c4_reject_lorem_ipsum else None, family="c4"),
        _Rule("c4_curly_bracket", "c4_curly_bracket", "flag", 1 if cfg.c4_reject_curly_bracket else None, family="c4"),
        _Rule("c4_min_sentences", "c4_sentences", "<", cfg.c4_min_sentences, family="c4"),
        _Rule(
            "refinedweb_removed_words",
            "refinedweb_removed_words_frac",
            ">",
            cfg.refinedweb_max_removed_words_frac,
            family="refinedweb",
        ),
        _Rule("fineweb_line_punct", "fineweb_line_punct_frac", lo, cfg.fineweb_min_line_punct_frac, family=fw),
        _Rule("fineweb_short_lines", "fineweb_short_line_frac", hi, cfg.fineweb_max_short_line_frac, family=fw),
        _Rule(
            "fineweb_dup_line_chars",
            "fineweb_dup_line_char_frac",
            hi,
            cfg.fineweb_max_dup_line_char_frac,
            family=fw,
        ),
        _Rule("fineweb_newline_ratio", "fineweb_newline_ratio", ">", cfg.fineweb_max_newline_ratio, family=fw),
        _Rule("book_min_words", "gopher_word_count", "<", cfg.book_min_words, only_source="book", family="book"),
        _Rule(
            "book_upper_lines",
            "book_upper_lines_frac",
            ">",
            cfg.book_max_upper_lines_frac,
            only_source="book",
            family="book",
        ),
        _Rule("code_minified", "code_minified", "flag", 1 if cfg.code_reject_minified else None, family=cd),
        _Rule("code_generated", "code_generated", "flag", 1 if cfg.code_reject_generated else None, family=cd),
        _Rule("code_lockfile", "code_lockfile", "flag", 1 if cfg.code_reject_lockfile else None, family=cd),
        _Rule("code_max_line_len", "code_max_line_len", ">", cfg.code_max_line_len, family=cd),
        _Rule("code_mean_line_len", "code_mean_line_len", ">", cfg.code_max_mean_line_len, family=cd),
        _Rule("code_alnum_frac", "code_alnum_frac", "<", cfg.code_min_alnum_frac, family=cd),
    ]
    off = set(cfg.disabled_rules)
    fams = set(cfg.families)
    return [x for x in r if x.threshold is not None and x.name not in off and x.family in fams]


# ----------------------------------------------------------------------------------------------
# statistics


def _safe_div(num: pl.Expr, den: pl.Expr) -> pl.Expr:
    """num / den as float, 0.0 where den is 0 (an empty document has no repetition or symbols)."""
    return pl.when(den > 0).then(num.cast(pl.Float64) / den.cast(pl.Float64)).otherwise(0.0)


def _dup_fracs(parts: pl.Expr, prefix: str, den: pl.Expr | None = None) -> list[pl.Expr]:
    """Duplicate-element fraction and duplicate-char fraction of a list-of-strings expression
    (chars over the parts' own chars, or over ``den``)."""
    n = parts.list.len()
    lens = parts.list.eval(pl.element().str.len_chars())
    ulens = parts.list.unique().list.eval(pl.element().str.len_chars())
    return [
        _safe_div(n - parts.list.n_unique(), n).alias(f"{prefix}_frac"),
        _safe_div(lens.list.sum() - ulens.list.sum(), lens.list.sum() if den is None else den).alias(
            f"{prefix}_char_frac"
        ),
    ]


def _prose_doc_stats(df: pl.DataFrame, cfg: FilterConfig) -> pl.DataFrame:
    """Per-document Gopher quality + line/paragraph repetition stats (list expressions only)."""
    text = pl.col("text").fill_null("")
    words = pl.col("__words")
    bullets = "".join("\\" + c if c in r"\-^[]" else c for c in cfg.bullet_chars)
    stop = [w.lower() for w in cfg.stop_words]
    strip_punct = r"^[\p{P}\p{S}]+|[\p{P}\p{S}]+$"
    t = pl.col("__text")
    if cfg.definitions == "datatrove":
        lines_exprs = [
            pl.col("__dtw").alias("__words"),  # dt_words, computed once in _compute
            t.str.replace_all(r"\r\n?", "\n")
            .str.strip_suffix("\n")
            .str.split("\n")
            .list.eval(pl.element().str.strip_chars())
            .alias("__lines"),
            t.str.replace_all(r"\n+", "\n").str.split("\n").alias("__rlines"),
            t.str.strip_chars().str.replace_all(r"\n{2,}", "\x00").str.split("\x00").alias("__paras"),
        ]
        stop_expr = words.list.unique().list.eval(pl.element().is_in(cfg.stop_words)).list.sum()
        rep_den: pl.Expr | None = t.str.len_chars()
    else:
        lines_exprs = [
            t.str.extract_all(r"\S+").alias("__words"),
            t.str.split("\n")
            .list.eval(pl.element().str.strip_chars())
            .list.filter(pl.element() != "")
            .alias("__lines"),
            t.str.replace_all(r"\n\s*\n", "\x00")
            .str.split("\x00")
            .list.eval(pl.element().str.strip_chars())
            .list.filter(pl.element() != "")
            .alias("__paras"),
        ]
        stop_expr = words.list.eval(
            pl.element().str.to_lowercase().str.replace_all(strip_punct, "").is_in(stop)
        ).list.sum()
        rep_den = None
    rep_lines = "__rlines" if cfg.definitions == "datatrove" else "__lines"
    # Python's str.isalpha (datatrove) is the letter categories; the paper reading takes any alphabetic char
    alpha_re = r"\p{L}" if cfg.definitions == "datatrove" else r"\p{Alphabetic}"
    non_symbol = _DT_NON_SYMBOL if cfg.definitions == "datatrove" else _NON_SYMBOL
    return (
        df.select(
            _RI,
            text.alias("__text"),
            *(["__dtw"] if cfg.definitions == "datatrove" else []),
        )
        .with_columns(lines_exprs)
        .with_columns(
            words.list.filter(pl.element().str.contains(non_symbol)).alias("__nsw"),
            words.list.len().alias("__nwords"),
        )
        .select(
            _RI,
            pl.col("__nsw").list.len().cast(pl.Int64).alias("gopher_word_count"),
            pl.col("__nsw")
            .list.eval(pl.element().str.len_chars())
            .list.mean()
            .fill_null(0.0)
            .alias("gopher_mean_word_length"),
            _safe_div(
                pl.max_horizontal(
                    pl.col("__text").str.count_matches("#", literal=True),
                    pl.col("__text").str.count_matches("...", literal=True)
                    + pl.col("__text").str.count_matches("…", literal=True),
                ),
                pl.col("__nwords"),
            ).alias("gopher_symbol_ratio"),
            _safe_div(
                pl.col("__lines").list.eval(pl.element().str.contains(f"^[{bullets}]")).list.sum(),
                pl.col("__lines").list.len(),
            ).alias("gopher_bullet_lines_frac"),
            _safe_div(
                pl.col("__lines")
                .list.eval(pl.element().str.ends_with("...") | pl.element().str.ends_with("…"))
                .list.sum(),
                pl.col("__lines").list.len(),
            ).alias("gopher_ellipsis_lines_frac"),
            _safe_div(
                words.list.eval(pl.element().str.contains(alpha_re)).list.sum(),
                pl.col("__nwords"),
            ).alias("gopher_alpha_words_frac"),
            stop_expr.cast(pl.Int64).alias("gopher_stop_words"),
            *_dup_fracs(pl.col(rep_lines), "rep_dup_line", rep_den),
            *_dup_fracs(pl.col("__paras"), "rep_dup_para", rep_den),
        )
    )


def _ngram_stats(df: pl.DataFrame, top_ns: list[int], dup_ns: list[int], dt: bool = False) -> pl.DataFrame:
    """Gopher n-gram repetition stats via one exploded word table (row, position) and group_by.

    N-gram identity is a hash chained over word hashes: h_n(i) = hash(h_{n-1}(i), h_1(i+n-1)), valid
    where word i+n-1 belongs to the same document. Character counts come from a running sum of word
    lengths, so no n-gram string is ever built. ``dt``: datatrove's reading (see FilterConfig.definitions).
    """
    out = df.select(_RI, pl.col("text").fill_null("").str.len_chars().alias("__len"))
    max_n = max([*top_ns, *dup_ns], default=0)
    if max_n == 0:
        return out
    w = (
        df.select(_RI, (pl.col("__dtw") if dt else pl.col("text").fill_null("").str.extract_all(r"\S+")).alias("w"))
        .explode("w")
        .filter(pl.col("w").is_not_null())
        .with_row_index("__g")
        .select(
            pl.col(_RI),
            pl.col("__g").cast(pl.Int64),
            pl.col("w").hash(seed=1).alias("wh"),
            pl.col("w").str.len_chars().cast(pl.Int64).alias("wl"),
        )
        .with_columns(pl.col("wl").cum_sum().alias("__cs"))
    )
    wh = w["wh"].to_numpy().astype(np.uint64)
    ri = w[_RI].to_numpy().astype(np.int64)
    size = len(wh)
    salt = ri.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    cs = w["__cs"].to_numpy()
    wl = w["wl"].to_numpy()
    docs = out[_RI].to_numpy()
    pos = np.searchsorted(docs, ri)  # document of each word, as an index into ``out``
    cols: dict[str, np.ndarray] = {"__total": np.bincount(pos, weights=wl, minlength=len(docs))}
    # Polynomial rolling hash in numpy (wrapping uint64): h_n(i) = h_{n-1}(i) * P + wh(i+n-1), salted
    # with the row index so that equal values mean "same n-gram in the same document". An n-gram can
    # only repeat where its (n-1)-word prefix repeats, so each n only hashes and groups the positions
    # whose shorter n-gram occurred twice or more (``cand``), a set that shrinks fast with n.
    cand, hc = np.arange(size), wh
    for n in range(2, max_n + 1):
        end = cand + n - 1
        inside = end < size
        inside[inside] = ri[end[inside]] == ri[cand[inside]]  # the n-gram ends in its document
        with np.errstate(over="ignore"):
            cand, hc = cand[inside], hc[inside] * np.uint64(1099511628211) + wh[end[inside]]
        if n not in top_ns and n not in dup_ns:
            continue
        v_idx, hn = cand, hc ^ salt[cand]
        if n in top_ns:
            cnt, first_of = _group_counts(hn, first=dt)
            rep = cnt > 1  # n-grams occurring twice or more in their document
        else:  # only which n-grams repeat is needed
            rep = pl.Series(hn, dtype=pl.UInt64).is_duplicated().to_numpy()
        cand, hc = cand[rep], hc[rep]
        if n in dup_ns:
            if dt:
                pk, chars = _greedy_picks(v_idx[rep], hn[rep], n, cs, wl)
                cols[f"__dup{n}"] = np.bincount(pos[pk], weights=chars, minlength=len(docs))
            else:
                covered = _covered_words(v_idx[rep], n, ri)
                cols[f"__dup{n}"] = np.bincount(pos[covered], weights=wl[covered], minlength=len(docs))
        if n in top_ns:
            gram_chars = cs[v_idx + n - 1] - cs[v_idx] + wl[v_idx] + (n - 1 if dt else 0)
            # ties: the longest (paper reading) or the first seen (Counter.most_common, datatrove)
            tie = (np.int64(1 << 40) - 1 - v_idx[first_of]) if dt else gram_chars
            key = (cnt.astype(np.int64) << 40) | tie.astype(np.int64)
            best = (
                pl.DataFrame({"d": pos[v_idx][rep], "key": key[rep], "val": (cnt * gram_chars)[rep]})
                .group_by("d")
                .agg(pl.col("val").get(pl.col("key").arg_max()))
            )
            # datatrove also scores a document whose n-grams are all distinct: its first n-gram, once
            top = _first_ngram_chars(n, pos, cs, wl, len(docs)) if dt else np.zeros(len(docs))
            top[best["d"].to_numpy()] = best["val"].to_numpy()
            cols[f"__top{n}"] = top
    out = out.with_columns([pl.Series(k, v, dtype=pl.Float64) for k, v in cols.items()])
    total = pl.col("__len") if dt else pl.col("__total").fill_null(0)
    return out.select(
        _RI,
        *[_safe_div(pl.col(f"__top{n}").fill_null(0), total).alias(f"rep_top{n}gram_frac") for n in top_ns],
        *[_safe_div(pl.col(f"__dup{n}").fill_null(0), total).alias(f"rep_dup{n}gram_frac") for n in dup_ns],
    )


def _group_counts(h: np.ndarray, first: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Per element: how often its value occurs, and (``first``) the index of its first occurrence,
    else zeros. polars' hash grouping (``over``), in order: a numpy argsort of the hashes cost ~3x more."""
    if len(h) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    d = pl.DataFrame({"h": pl.Series(h, dtype=pl.UInt64)}).with_row_index("i")
    d = d.select(pl.len().over("h").alias("c"), *([pl.col("i").min().over("h").alias("f")] if first else []))
    cnt = d["c"].to_numpy().astype(np.int64)
    return cnt, (d["f"].to_numpy().astype(np.int64) if first else np.zeros(len(h), dtype=np.int64))


def _first_ngram_chars(n: int, pos: np.ndarray, cs: np.ndarray, wl: np.ndarray, ndocs: int) -> np.ndarray:
    """Per document, the characters of its first n-gram joined by spaces (0 if it has fewer words)."""
    out = np.zeros(ndocs)
    first = np.flatnonzero(np.diff(pos, prepend=-1))  # each document's first word
    first = first[np.bincount(pos, minlength=ndocs)[pos[first]] >= n]
    out[pos[first]] = cs[first + n - 1] - cs[first] + wl[first] + n - 1
    return out


def _covered_words(starts: np.ndarray, n: int, ri: np.ndarray) -> np.ndarray:
    """Mask of the words covered by an n-gram starting at one of ``starts`` (ascending) in the same
    document: word g is covered if such an n-gram starts in (g - n, g]."""
    size = len(ri)
    if not len(starts):
        return np.zeros(size, dtype=bool)
    g = np.arange(size)
    last = np.searchsorted(starts, g, side="right") - 1
    st = starts[np.maximum(last, 0)]
    return (last >= 0) & (g - st < n) & (ri[st] == ri)


def _greedy_picks(
    cand: np.ndarray, hashes: np.ndarray, n: int, cs: np.ndarray, wl: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """datatrove's scan (``find_all_duplicate``): walk the words; an n-gram already in the "seen" set
    counts its chars and jumps n words, any other is added to the set. Jumped-over n-grams are
    never added, so a later copy of one of them is not a repeat.

    Only n-grams that occur more than once in their document (``cand``, ascending positions, with
    their ``hashes``) can ever be found in the set, so only those are visited in Python; a jump never
    crosses a document, since an n-gram starting at p ends inside its document. Returns (pick
    positions, their chars).
    """
    picks = []
    seen: set[int] = set()
    nxt = -1
    for p, h in zip(cand.tolist(), hashes.tolist(), strict=True):
        if p < nxt:
            continue
        if h in seen:
            picks.append(p)
            nxt = p + n
        else:
            seen.add(h)
    pk = np.asarray(picks, dtype=np.int64)
    chars = cs[pk + n - 1] - cs[pk] + wl[pk] if len(pk) else np.zeros(0, dtype=np.int64)
    return pk, chars


def _c4_lines(df: pl.DataFrame, cfg: FilterConfig) -> pl.DataFrame:
    """C4 line removal and page rules, in the order of the C4 reference code (TFDS ``c4_utils``).

    Returns ``_RI``, the rewritten ``__text`` and the ``c4_*`` statistics. The lorem-ipsum and
    curly-bracket page rules only look at lines that survived the punctuation and length checks,
    as in the reference code. Sentences are counted on kept lines: runs of ``.!?`` followed by
    space or line end (at least one per kept line, which always ends in terminal punctuation).
    Per-line tests are materialised as columns once, then combined: one nested expression would
    re-evaluate every shared test (eager ``with_columns`` has no common-subexpression elimination).
    """
    raw = pl.col("__text").str.split("\n")
    line = pl.col("__l")
    lines = (
        df.select(_RI, raw.alias("__l"))
        .explode("__l")
        .with_columns(line.fill_null("").str.strip_chars())
        .with_columns((line.str.replace_all(_C4_CITATION, "") if cfg.c4_remove_citations else line).alias("__cut"))
        .with_columns(pl.col("__cut").str.to_lowercase().alias("__low"))
    )
    cut, low = pl.col("__cut"), pl.col("__low")
    tests: list[pl.Expr] = []  # the line-level checks before the keyword rules
    if cfg.c4_max_word_length is not None:
        tests.append(~line.str.contains(rf"\S{{{cfg.c4_max_word_length + 1}}}"))
    if cfg.c4_require_terminal_punct:
        tests.append(pl.any_horizontal([cut.str.ends_with(p) for p in C4_END_PUNCT]) & ~cut.str.ends_with("..."))
    n = cfg.c4_min_words_per_line
    if n is not None and n > 0:  # ">= n whitespace-separated words", without counting them all
        tests.append(line.str.contains(rf"(?:\S+\s+){{{n - 1}}}\S"))
    lines = lines.with_columns(
        (pl.all_horizontal(tests) if tests else pl.lit(True)).alias("__ok0"),
        low.str.contains("lorem ipsum", literal=True).alias("__has_lorem"),
        (low.str.contains("javascript", literal=True) if cfg.c4_drop_javascript_lines else pl.lit(False)).alias(
            "__has_js"
        ),
        cut.str.contains("{", literal=True).alias("__has_curly"),
        (low.str.contains_any(C4_POLICY) if cfg.c4_drop_policy_lines else pl.lit(False)).alias("__has_policy"),
        pl.max_horizontal(cut.str.count_matches(r"[.!?]+['\")\]]*(\s|$)"), pl.lit(1)).alias("__sent"),
    )
    ok0 = pl.col("__ok0")
    ok1 = ok0 & ~pl.col("__has_js")
    per_doc = (
        lines.with_columns(
            (ok1 & ~pl.col("__has_policy")).alias("__ok"),
            (ok0 & pl.col("__has_lorem")).alias("__lorem"),
            (ok1 & pl.col("__has_curly")).alias("__curly"),
        )
        .group_by(_RI, maintain_order=True)
        .agg(
            pl.col("__cut").filter(pl.col("__ok")).str.join("\n").str.strip_chars().alias("__new"),
            pl.col("__sent").filter(pl.col("__ok")).sum().cast(pl.Int64).alias("c4_sentences"),
            pl.col("__lorem").any().alias("c4_lorem_ipsum"),
            pl.col("__curly").any().alias("c4_curly_bracket"),
            (1.0 - pl.col("__ok").mean()).alias("c4_removed_lines_frac"),
        )
    )
    return per_doc


def _refinedweb_lines(df: pl.DataFrame, cfg: FilterConfig) -> pl.DataFrame:
    """RefinedWeb line-wise corrections: ``_RI``, rewritten ``__new`` and ``refinedweb_removed_words_frac``."""
    lines = df.select(_RI, pl.col("__text").str.split("\n").alias("__l")).explode("__l")
    line = pl.col("__l").fill_null("")
    s = line.str.strip_chars()
    nw = s.str.count_matches(r"\S+")
    letters = s.str.count_matches(r"\p{Alphabetic}")
    upper = s.str.count_matches(r"\p{Uppercase}")
    drop = (
        ((letters > 0) & (upper > cfg.refinedweb_upper_frac * letters))  # mainly upper case
        | s.str.contains(r"^[\d\s\p{P}\p{S}]+$") & s.str.contains(r"\d")  # only numerical
        | s.str.contains(_RW_COUNTER)  # a counter: "3 likes"
        | (nw == 1)  # a single word
        | ((nw <= cfg.refinedweb_short_line_words) & s.str.contains(_RW_BOILER))
    )
    return (
        lines.with_columns(drop.alias("__drop"), nw.alias("__nw"))
        .group_by(_RI, maintain_order=True)
        .agg(
            pl.col("__l").filter(~pl.col("__drop")).str.join("\n").alias("__new"),
            _safe_div(pl.col("__nw").filter(pl.col("__drop")).sum(), pl.col("__nw").sum()).alias(
                "refinedweb_removed_words_frac"
            ),
        )
    )


# FineWeb's "terminal punctuation": any Unicode sentence terminator, plus closing quotes after one.
_FW_TERMINAL = r"[\p{Sentence_Terminal}]['\"”’)\]]*$"
# datatrove: the line's last char is in TERMINAL_PUNCTUATION (Sentence_Terminal plus three Khmer signs)
_FW_TERMINAL_DT = r"[\p{Sentence_Terminal}៖៙៚]$"


def _fineweb_stats(df: pl.DataFrame, cfg: FilterConfig) -> pl.DataFrame:
    """FineWeb custom rules over non-blank ``\\n`` lines of ``__text`` (lines are not stripped)."""
    text = pl.col("__text")
    dt = cfg.definitions == "datatrove"
    # the line list is materialised once: as a shared sub-expression it was split four times ...
    lines = pl.col("__fwl")
    n = lines.list.len()
    lens = lines.list.eval(pl.element().str.len_chars())
    ulens = lines.list.unique().list.eval(pl.element().str.len_chars())
    # ... and so are the token counts: _safe_div reads its denominator twice (test and division)
    return df.with_columns(
        text.str.split("\n").list.filter(pl.element().str.strip_chars() != "").alias("__fwl"),
        (dt_word_count(text) if dt else text.str.count_matches(r"\w+|[^\w\s]")).alias("__fw_tokens"),
    ).select(
        _RI,
        pl.when(n > 0)
        .then(lines.list.eval(pl.element().str.contains(_FW_TERMINAL_DT if dt else _FW_TERMINAL)).list.sum() / n)
        .otherwise(0.0)
        .alias("fineweb_line_punct_frac"),
        _safe_div(
            lens.list.sum() - ulens.list.sum(), text.str.replace_all("\n", "", literal=True).str.len_chars()
        ).alias("fineweb_dup_line_char_frac"),
        _safe_div(lines.list.eval(pl.element().str.len_chars() <= cfg.fineweb_short_line_len).list.sum(), n).alias(
            "fineweb_short_line_frac"
        ),
        _safe_div(
            text.str.count_matches("\n", literal=True),
            pl.col("__fw_tokens"),
        ).alias("fineweb_newline_ratio"),
    )


def _book_stats(df: pl.DataFrame) -> pl.DataFrame:
    lines = (
        pl.col("__text")
        .str.split("\n")
        .list.eval(pl.element().str.strip_chars())
        .list.filter(pl.element().str.contains(r"\p{Alphabetic}"))
    )
    upper = lines.list.eval(
        pl.element().str.count_matches(r"\p{Uppercase}") > 0.5 * pl.element().str.count_matches(r"\p{Alphabetic}")
    )
    return df.select(_RI, _safe_div(upper.list.sum(), lines.list.len()).alias("book_upper_lines_frac"))


def _code_doc_stats(df: pl.DataFrame) -> pl.DataFrame:
    text = pl.col("text").fill_null("")
    lines = text.str.split("\n").list.eval(pl.element().str.len_chars())
    meta = pl.col("meta") if "meta" in df.columns else pl.lit(None, dtype=pl.String)
    flags = [
        (meta.str.json_path_match(f"$.{f}") == "true").fill_null(False).alias(f"code_{f}")
        for f in ("minified", "generated", "lockfile")
    ]
    return df.select(
        _RI,
        lines.list.max().fill_null(0).cast(pl.Int64).alias("code_max_line_len"),
        lines.list.mean().fill_null(0.0).alias("code_mean_line_len"),
        _safe_div(text.str.count_matches(r"[\p{Alphabetic}\p{N}]"), text.str.len_chars()).alias("code_alnum_frac"),
        *flags,
    )


def _stat_dtype(name: str) -> pl.DataType:
    if name in _BOOL_STATS:
        return pl.Boolean()
    return pl.Int64() if name in _INT_STATS else pl.Float64()


def _compute(df: pl.DataFrame, cfg: FilterConfig) -> pl.DataFrame:
    """compute_stats plus the temporary row index, code meta flags and ``__orig_text`` (the text
    before line removal, for rejected rows). Only the families in ``cfg.families`` are computed."""
    df = df.with_row_index(_RI)
    fams = set(cfg.families)
    prose_mask = pl.col("source").is_in(cfg.apply_prose_to)
    if cfg.prose_langs is not None and "lang" in df.columns:
        prose_mask = prose_mask & (pl.col("lang").is_null() | pl.col("lang").is_in(cfg.prose_langs))
    prose = df.filter(prose_mask)
    if cfg.definitions == "datatrove":  # tokenised once, read by the Gopher quality and repetition stats
        prose = prose.with_columns(dt_words(pl.col("text").fill_null("")).alias("__dtw"))

    # Skip the expensive n-gram passes whose rules are all off.
    active = {r.stat for r in _rules(cfg)}
    top_ns = [n for n in (2, 3, 4) if f"rep_top{n}gram_frac" in active]
    dup_ns = [n for n in range(5, 11) if f"rep_dup{n}gram_frac" in active]

    frames: list[pl.DataFrame] = []
    # Gopher rules (and the book word count) judge the text as it came in, as the papers' pipelines do.
    if fams & {"gopher_quality", "gopher_repetition", "book"}:
        frames.append(_prose_doc_stats(prose, cfg))
    if "gopher_repetition" in fams:
        frames.append(_ngram_stats(prose, top_ns, dup_ns, cfg.definitions == "datatrove"))
    # Line-rewriting families run in order (C4, then RefinedWeb) and FineWeb judges the result.
    text = prose.select(_RI, pl.col("text").fill_null("").alias("__text"))
    rewritten = False
    if "c4" in fams:
        c4 = _c4_lines(text, cfg)
        frames.append(c4.drop("__new"))
        if cfg.c4_remove_lines:
            text, rewritten = c4.select(_RI, pl.col("__new").alias("__text")), True
    if "refinedweb" in fams:
        rw = _refinedweb_lines(text, cfg)
        frames.append(rw.drop("__new"))
        text, rewritten = rw.select(_RI, pl.col("__new").alias("__text")), True
    if "fineweb" in fams:
        frames.append(_fineweb_stats(text, cfg))
    if "book" in fams:
        books = prose.filter(pl.col("source") == "book").select(_RI)
        frames.append(_book_stats(text.join(books, on=_RI, how="semi")))

    drop = [c for c in [*STAT_COLUMNS, "code_minified", "code_generated", "code_lockfile"] if c in df.columns]
    df = df.drop(drop).with_columns(pl.col("text").alias("__orig_text"))
    for f in frames:
        df = df.join(f, on=_RI, how="left")
    if rewritten:
        df = (
            df.join(text.rename({"__text": "__new_text"}), on=_RI, how="left")
            .with_columns(pl.coalesce("__new_text", "text").alias("text"))
            .drop("__new_text")
        )
    if "code" in fams:
        df = df.join(_code_doc_stats(df.filter(pl.col("source").is_in(cfg.apply_code_to))), on=_RI, how="left")
    missing = [pl.lit(None, dtype=_stat_dtype(s)).alias(s) for s in STAT_COLUMNS if s not in df.columns]
    flags = [pl.lit(None, dtype=pl.Boolean).alias(f) for f in _CODE_FLAGS if f not in df.columns]
    return df.with_columns(missing + flags).sort(_RI)


_CODE_FLAGS = ("code_minified", "code_generated", "code_lockfile")


def compute_stats(df: pl.DataFrame, cfg: FilterConfig | None = None) -> pl.DataFrame:
    """``df`` plus one column per statistic in ``STAT_COLUMNS`` (null where the rule family does not
    apply to the row's source). Row order is preserved."""
    cfg = cfg or FilterConfig()
    return _compute(df, cfg).drop(_RI, "__orig_text", *_CODE_FLAGS)


# ----------------------------------------------------------------------------------------------
# rules


def _fail_expr(rule: _Rule) -> pl.Expr:
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


def _detail_expr(rule: _Rule) -> pl.Expr:
    """``{"stat": value}`` as JSON text: the statistic that made ``rule`` fail."""
    value = pl.col(rule.stat)
    if value.meta.output_name() in _BOOL_STATS or rule.op == "flag":
        shown = pl.when(value.fill_null(False)).then(pl.lit("true")).otherwise(pl.lit("false"))
    elif rule.stat in _INT_STATS:
        shown = value.cast(pl.String)
    else:
        shown = value.round(6).cast(pl.String)
    return pl.concat_str([pl.lit(f'{{"{rule.stat}": '), shown.fill_null("null"), pl.lit("}")])


def rule_table(cfg: FilterConfig | None = None) -> list[dict[str, object]]:
    """The enabled rules as plain records (name, stat, op, threshold, family), for previews and reports."""
    return [
        {
            "name": r.name,
            "stat": r.stat,
            "op": r.op,
            "threshold": r.threshold,
            "family": r.family,
            "only_source": r.only_source,
            "skip_source": r.skip_source,
        }
        for r in _rules(cfg or FilterConfig())
    ]


def apply_filters(df: pl.DataFrame, cfg: FilterConfig | None = None) -> StageResult:
    """Keep documents passing every enabled rule; reject the rest with the first failing rule.

    Kept rows carry the stat columns (to preview other thresholds later without recomputing) and,
    with C4 or RefinedWeb line removal on, the rewritten text. Rejected rows keep the text as it came
    in, and ``detail`` holds the statistic that failed, e.g. ``{"gopher_word_count": 23}``.
    """
    cfg = cfg or FilterConfig()
    if not cfg.enabled:
        return StageResult(kept=df, rejected=to_rejected(df.clear(), STAGE, ""), stats={"dropped_by_rule": {}})
    rules = _rules(cfg)
    s = _compute(df, cfg)
    reasons = [pl.when(_fail_expr(r)).then(pl.lit(r.reason)) for r in rules]
    details = [pl.when(_fail_expr(r)).then(_detail_expr(r)) for r in rules]
    if cfg.blocklist is not None:
        block = blocklist_reason(s, cfg.blocklist)
        reasons.insert(0, block)
        details.insert(0, pl.when(block.is_not_null()).then(pl.lit(None, dtype=pl.String)))
    none = pl.lit(None, dtype=pl.String)
    s = s.with_columns(
        (pl.coalesce(reasons) if reasons else none).alias("__reason"),
        (pl.coalesce(details) if details else none).alias("__detail"),
    )
    s = s.drop(*_CODE_FLAGS, _RI)
    kept = s.filter(pl.col("__reason").is_null()).drop("__reason", "__detail", "__orig_text")
    bad = s.filter(pl.col("__reason").is_not_null())
    counts = dict(bad.group_by("__reason").len().iter_rows())
    order = list(dict.fromkeys([*counts.keys()] if not rules else [r.reason for r in rules] + sorted(counts)))
    dropped = {k: int(counts[k]) for k in order if k in counts}
    bad = bad.drop("reason", "detail", "text", strict=False).rename(
        {"__reason": "reason", "__detail": "detail", "__orig_text": "text"}
    )
    rejected = to_rejected(bad, STAGE)
    return StageResult(kept=kept, rejected=rejected, stats={"dropped_by_rule": dropped})


def rule_failures(stats: pl.DataFrame, cfg: FilterConfig | None = None) -> pl.DataFrame:
    """One boolean column per enabled rule name: does the row fail it? ``stats`` is ``compute_stats``
    output. Rules sharing a name (the book/non-book word-count bound) are or-ed."""
    cfg = cfg or FilterConfig()
    by_name: dict[str, pl.Expr] = {}
    for r in _rules(cfg):
        e = _fail_expr(r)
        by_name[r.name] = by_name[r.name] | e if r.name in by_name else e
    return stats.select([e.alias(n) for n, e in by_name.items()])
