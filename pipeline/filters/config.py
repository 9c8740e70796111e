"""``FilterConfig``: the filter stage's settings (families, definitions, and every rule's threshold).

Each threshold field cites the paper and value it comes from; ``None`` switches its rule off. Which
field each rule reads is declared in the rule table (``pipeline.filters.rules``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipeline.bounds import MAX_DOC_CHARS, Float, Int, ZeroToOne, field_error
from pipeline.filters.blocklist import BlocklistConfig
from pipeline.filters.datatrove import DatatroveDefinitions
from pipeline.filters.definitions import Definitions
from pipeline.filters.rules import DUP_NS, RULE_NAMES, RULES, TOP_NS, Family, active_rules

GOPHER_STOP_WORDS = ["the", "be", "to", "of", "and", "that", "have", "with"]
# Characters that open a bullet-point line (Gopher does not list them; these cover the usual ones).
_DEFAULT_BULLETS = "•‣◦▪▫●○■□∙·-*–"

# ``FilterConfig.definitions`` -> the definitions object every statistic reads (``FilterConfig.reading``).
DefinitionsName = Literal["paper", "datatrove"]
DEFINITIONS: dict[DefinitionsName, Definitions] = {"paper": Definitions(), "datatrove": DatatroveDefinitions()}

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
    # "paper": our reading of the papers (``pipeline.filters.definitions``). "datatrove": datatrove 0.10's
    # reading, for like-for-like comparison (``pipeline.filters.datatrove``: spaCy tokens as words, its
    # n-gram scan, strict FineWeb bounds, ...). ``reading`` is the object each statistic asks.
    definitions: DefinitionsName = "paper"
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
    max_top_ngram_frac: dict[Annotated[int, Field(ge=min(TOP_NS), le=max(TOP_NS))], ZeroToOne | None] = Field(
        default_factory=lambda: {2: 0.20, 3: 0.18, 4: 0.16},
        description="most frequent n-gram character fraction, n = 2, 3, 4: 0.20, 0.18, 0.16",
    )
    max_dup_ngram_frac: dict[Annotated[int, Field(ge=min(DUP_NS), le=max(DUP_NS))], ZeroToOne | None] = Field(
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
        pairs = [  # (lower field, upper field)
            ("min_words", "max_words"),
            ("min_words", "book_max_words"),
            ("book_min_words", "book_max_words"),
            ("min_mean_word_length", "max_mean_word_length"),
        ]
        rule_of = {r.field: r.name for r in RULES}
        active = {r.name for r in active_rules(self)}
        for lo, hi in pairs:
            a, b = getattr(self, lo), getattr(self, hi)
            if a is not None and b is not None and a > b and {rule_of[lo], rule_of[hi]} <= active:
                raise field_error(lo, f"{lo}={a} is above {hi}={b}: every document would be rejected", a)
        return self

    @field_validator("disabled_rules")
    @classmethod
    def _known_rules(cls, v: list[str]) -> list[str]:
        unknown = sorted(set(v) - set(RULE_NAMES))
        if unknown:
            raise ValueError(f"unknown rules {unknown}; known: {RULE_NAMES}")
        return v

    @property
    def reading(self) -> Definitions:
        """The definitions ``definitions`` names: how words, lines and repeats are counted."""
        return DEFINITIONS[self.definitions]
