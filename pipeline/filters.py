"""Heuristic quality filter (stage ``"filter"``).

Prose rules follow Gopher (Rae et al. 2021, "Scaling Language Models", appendix A: quality filters
and repetition removal); code rules follow the StarCoder / The Stack preprocessing. Every statistic is
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
  blank line; both are stripped, blank ones dropped. Fraction = (count - distinct) / count; the char
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
from typing import Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, field_validator

from pipeline.schema import StageResult, to_rejected

STAGE = "filter"
_RI = "__filter_row"  # temporary row index used to join stats back

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
CODE_STATS = ["code_max_line_len", "code_mean_line_len", "code_alnum_frac"]
STAT_COLUMNS = PROSE_STATS + CODE_STATS

_INT_STATS = {"gopher_word_count", "gopher_stop_words", "code_max_line_len"}

# Characters that open a bullet-point line (Gopher does not list them; these cover the usual ones).
_DEFAULT_BULLETS = "•‣◦▪▫●○■□∙·-*–"
_NON_SYMBOL = r"[^\p{P}\p{S}]"  # a word counts as a word if it has one char that is not punct/symbol


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

    # --- Gopher quality filters (Rae et al. 2021, appendix A) ---
    min_words: int | None = 50  # Gopher: 50 <= words
    max_words: int | None = 100_000  # Gopher: words <= 100,000
    # Books are long by nature: None = no upper bound for source "book".
    book_max_words: int | None = None
    min_mean_word_length: float | None = 3.0  # Gopher: mean word length 3..10 characters
    max_mean_word_length: float | None = 10.0
    max_symbol_word_ratio: float | None = 0.1  # Gopher: '#' or ellipsis to word ratio <= 0.1
    max_bullet_lines_frac: float | None = 0.9  # Gopher: <= 90% of lines start with a bullet
    max_ellipsis_lines_frac: float | None = 0.3  # Gopher: <= 30% of lines end with an ellipsis
    min_alpha_words_frac: float | None = 0.8  # Gopher: >= 80% of words contain an alphabetic char
    min_stop_words: int | None = 2  # Gopher: >= 2 of the stop words below
    stop_words: list[str] = Field(default_factory=lambda: list(GOPHER_STOP_WORDS))
    bullet_chars: str = _DEFAULT_BULLETS

    # --- Gopher repetition removal (Rae et al. 2021, appendix A, table A1) ---
    max_dup_line_frac: float | None = 0.30
    max_dup_para_frac: float | None = 0.30
    max_dup_line_char_frac: float | None = 0.20
    max_dup_para_char_frac: float | None = 0.20
    # Most frequent n-gram character fraction, n = 2, 3, 4: 0.20, 0.18, 0.16.
    max_top_ngram_frac: dict[int, float | None] = Field(default_factory=lambda: {2: 0.20, 3: 0.18, 4: 0.16})
    # Duplicated n-gram character fraction, n = 5..10: 0.15 .. 0.10.
    max_dup_ngram_frac: dict[int, float | None] = Field(
        default_factory=lambda: {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}
    )

    # --- Code (StarCoder / The Stack, Li et al. 2023; Kocetkov et al. 2022) ---
    code_max_line_len: int | None = 1000  # StarCoder: max line length <= 1000
    code_max_mean_line_len: float | None = 100.0  # StarCoder: mean line length <= 100
    code_min_alnum_frac: float | None = 0.25  # StarCoder: alphanumeric fraction >= 0.25
    code_reject_minified: bool = True  # meta flags set by the code reader
    code_reject_generated: bool = True
    code_reject_lockfile: bool = True

    @field_validator("max_top_ngram_frac")
    @classmethod
    def _top_n(cls, v: dict[int, float | None]) -> dict[int, float | None]:
        if not set(v) <= {2, 3, 4}:
            raise ValueError("max_top_ngram_frac keys must be among 2, 3, 4")
        return v

    @field_validator("max_dup_ngram_frac")
    @classmethod
    def _dup_n(cls, v: dict[int, float | None]) -> dict[int, float | None]:
        if not set(v) <= set(range(5, 11)):
            raise ValueError("max_dup_ngram_frac keys must be among 5..10")
        return v

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
    op: Literal["<", ">", "flag"]
    threshold: float | int | None
    only_source: str | None = None  # restrict to one source
    skip_source: str | None = None  # never apply to this source

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
    "code_minified",
    "code_generated",
    "code_lockfile",
    "code_max_line_len",
    "code_mean_line_len",
    "code_alnum_frac",
]


def _rules(cfg: FilterConfig) -> list[_Rule]:
    """The enabled rules, in evaluation order."""
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
        _Rule("rep_dup_line", "rep_dup_line_frac", ">", cfg.max_dup_line_frac),
        _Rule("rep_dup_para", "rep_dup_para_frac", ">", cfg.max_dup_para_frac),
        _Rule("rep_dup_line_char", "rep_dup_line_char_frac", ">", cfg.max_dup_line_char_frac),
        _Rule("rep_dup_para_char", "rep_dup_para_char_frac", ">", cfg.max_dup_para_char_frac),
        *[
            _Rule(f"rep_top{n}gram", f"rep_top{n}gram_frac", ">", cfg.max_top_ngram_frac.get(n))
            for n in (2, 3, 4)
        ],
        *[
            _Rule(f"rep_dup{n}gram", f"rep_dup{n}gram_frac", ">", cfg.max_dup_ngram_frac.get(n))
            for n in range(5, 11)
        ],
        _Rule("code_minified", "code_minified", "flag", 1 if cfg.code_reject_minified else None),
        _Rule("code_generated", "code_generated", "flag", 1 if cfg.code_reject_generated else None),
        _Rule("code_lockfile", "code_lockfile", "flag", 1 if cfg.code_reject_lockfile else None),
        _Rule("code_max_line_len", "code_max_line_len", ">", cfg.code_max_line_len),
        _Rule("code_mean_line_len", "code_mean_line_len", ">", cfg.code_max_mean_line_len),
        _Rule("code_alnum_frac", "code_alnum_frac", "<", cfg.code_min_alnum_frac),
    ]
    off = set(cfg.disabled_rules)
    return [x for x in r if x.threshold is not None and x.name not in off]


# ----------------------------------------------------------------------------------------------
# statistics


def _safe_div(num: pl.Expr, den: pl.Expr) -> pl.Expr:
    """num / den as float, 0.0 where den is 0 (an empty document has no repetition or symbols)."""
    return pl.when(den > 0).then(num.cast(pl.Float64) / den.cast(pl.Float64)).otherwise(0.0)


def _dup_fracs(parts: pl.Expr, prefix: str) -> list[pl.Expr]:
    """Duplicate-element fraction and duplicate-char fraction of a list-of-strings expression."""
    n = parts.list.len()
    lens = parts.list.eval(pl.element().str.len_chars())
    ulens = parts.list.unique().list.eval(pl.element().str.len_chars())
    return [
        _safe_div(n - parts.list.n_unique(), n).alias(f"{prefix}_frac"),
        _safe_div(lens.list.sum() - ulens.list.sum(), lens.list.sum()).alias(f"{prefix}_char_frac"),
    ]


def _prose_doc_stats(df: pl.DataFrame, cfg: FilterConfig) -> pl.DataFrame:
    """Per-document Gopher quality + line/paragraph repetition stats (list expressions only)."""
    text = pl.col("text").fill_null("")
    words = pl.col("__words")
    bullets = "".join("\\" + c if c in r"\-^[]" else c for c in cfg.bullet_chars)
    stop = [w.lower() for w in cfg.stop_words]
    strip_punct = r"^[\p{P}\p{S}]+|[\p{P}\p{S}]+$"
    return (
        df.select(
            _RI,
            text.alias("__text"),
        )
        .with_columns(
            pl.col("__text").str.extract_all(r"\S+").alias("__words"),
            pl.col("__text")
            .str.split("\n")
            .list.eval(pl.element().str.strip_chars())
            .list.filter(pl.element() != "")
            .alias("__lines"),
            pl.col("__text")
            .str.replace_all(r"\n\s*\n", "\x00")
            .str.split("\x00")
            .list.eval(pl.element().str.strip_chars())
            .list.filter(pl.element() != "")
            .alias("__paras"),
        )
        .with_columns(
            words.list.filter(pl.element().str.contains(_NON_SYMBOL)).alias("__nsw"),
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
                words.list.eval(pl.element().str.contains(r"\p{Alphabetic}")).list.sum(),
                pl.col("__nwords"),
            ).alias("gopher_alpha_words_frac"),
            words.list.eval(
                pl.element().str.to_lowercase().str.replace_all(strip_punct, "").is_in(stop)
            )
            .list.sum()
            .cast(pl.Int64)
            .alias("gopher_stop_words"),
            *_dup_fracs(pl.col("__lines"), "rep_dup_line"),
            *_dup_fracs(pl.col("__paras"), "rep_dup_para"),
        )
    )


def _ngram_stats(df: pl.DataFrame, top_ns: list[int], dup_ns: list[int]) -> pl.DataFrame:
    """Gopher n-gram repetition stats via one exploded word table (row, position) and group_by.

    N-gram identity is a hash chained over word hashes: h_n(i) = hash(h_{n-1}(i), h_1(i+n-1)), valid
    where word i+n-1 belongs to the same document. Character counts come from a running sum of word
    lengths, so no n-gram string is ever built.
    """
    out = df.select(_RI)
    max_n = max([*top_ns, *dup_ns], default=0)
    if max_n == 0:
        return out
    w = (
        df.select(_RI, pl.col("text").fill_null("").str.extract_all(r"\S+").alias("w"))
        .explode("w")
        .filter(pl.col("w").is_not_null())
        .with_row_index("__g")
        .select(
            pl.col(_RI),
            pl.col("__g").cast(pl.Int64),
            # the row index is hashed in, so equal hashes mean "same n-gram in the same document"
            pl.struct(pl.col(_RI), pl.col("w")).hash(seed=0).alias("h1"),
            pl.col("w").hash(seed=1).alias("wh"),
            pl.col("w").str.len_chars().cast(pl.Int64).alias("wl"),
        )
        .with_columns(pl.col("wl").cum_sum().alias("__cs"))
    )
    for n in range(2, max_n + 1):
        same_doc = pl.col(_RI).shift(-(n - 1)) == pl.col(_RI)
        nxt = pl.struct(pl.col(f"h{n - 1}").alias("a"), pl.col("wh").shift(-(n - 1)).alias("b"))
        # h_n depends on h_{n-1}: one level at a time
        w = w.with_columns(pl.when(same_doc).then(nxt.hash(seed=n)).alias(f"h{n}"))
    agg: list[pl.Expr] = [pl.col("wl").sum().alias("__total")]
    if dup_ns:
        w = w.with_columns(
            (pl.col(f"h{n}").is_not_null() & pl.col(f"h{n}").is_duplicated()).alias(f"dup{n}") for n in dup_ns
        )
        cover = []
        for n in dup_ns:
            # word g is covered if a duplicated n-gram of the same document starts in (g-n, g]
            dup = pl.col(f"dup{n}")
            last_start = pl.when(dup).then(pl.col("__g")).otherwise(None).forward_fill()
            last_doc = pl.when(dup).then(pl.col(_RI)).otherwise(None).forward_fill()
            cover.append(
                ((pl.col("__g") - last_start < n) & (last_doc == pl.col(_RI))).fill_null(False).alias(f"cov{n}")
            )
        w = w.with_columns(cover)
        agg += [pl.col("wl").filter(pl.col(f"cov{n}")).sum().alias(f"__dup{n}") for n in dup_ns]
    out = out.join(w.group_by(_RI).agg(agg), on=_RI, how="left")
    for n in top_ns:
        chars = pl.col("__cs").shift(-(n - 1)) - pl.col("__cs") + pl.col("wl")
        top = (
            w.with_columns(chars.alias("ch"))
            .filter(pl.col(f"h{n}").is_not_null())
            .group_by(_RI, f"h{n}")
            .agg(pl.len().alias("cnt"), pl.col("ch").first())
            .filter(pl.col("cnt") > 1)
            .group_by(_RI)
            .agg(
                (pl.col("cnt") * pl.col("ch"))
                .sort_by(["cnt", "ch"], descending=[True, True])
                .first()
                .alias(f"__top{n}")
            )
        )
        out = out.join(top, on=_RI, how="left")
    total = pl.col("__total").fill_null(0)
    return out.select(
        _RI,
        *[_safe_div(pl.col(f"__top{n}").fill_null(0), total).alias(f"rep_top{n}gram_frac") for n in top_ns],
        *[_safe_div(pl.col(f"__dup{n}").fill_null(0), total).alias(f"rep_dup{n}gram_frac") for n in dup_ns],
    )


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
        _safe_div(text.str.count_matches(r"[\p{Alphabetic}\p{N}]"), text.str.len_chars()).alias(
            "code_alnum_frac"
        ),
        *flags,
    )


def _stat_dtype(name: str) -> pl.DataType:
    return pl.Int64() if name in _INT_STATS else pl.Float64()


def _compute(df: pl.DataFrame, cfg: FilterConfig) -> pl.DataFrame:
    """compute_stats plus the temporary row index and code meta flags (used by apply_filters)."""
    df = df.with_row_index(_RI)
    prose_mask = pl.col("source").is_in(cfg.apply_prose_to)
    if cfg.prose_langs is not None and "lang" in df.columns:
        prose_mask = prose_mask & (pl.col("lang").is_null() | pl.col("lang").is_in(cfg.prose_langs))
    prose = df.filter(prose_mask)
    code = df.filter(pl.col("source").is_in(cfg.apply_code_to))

    # Skip the expensive n-gram passes whose rules are all off.
    active = {r.stat for r in _rules(cfg)}
    top_ns = [n for n in (2, 3, 4) if f"rep_top{n}gram_frac" in active]
    dup_ns = [n for n in range(5, 11) if f"rep_dup{n}gram_frac" in active]

    p = _prose_doc_stats(prose, cfg).join(_ngram_stats(prose, top_ns, dup_ns), on=_RI, how="left")
    c = _code_doc_stats(code)
    df = df.drop([c for c in [*STAT_COLUMNS, "code_minified", "code_generated", "code_lockfile"] if c in df])
    df = df.join(p, on=_RI, how="left").join(c, on=_RI, how="left")
    missing = [pl.lit(None, dtype=_stat_dtype(s)).alias(s) for s in STAT_COLUMNS if s not in df.columns]
    return df.with_columns(missing).sort(_RI)


def compute_stats(df: pl.DataFrame, cfg: FilterConfig | None = None) -> pl.DataFrame:
    """``df`` plus one column per statistic in ``STAT_COLUMNS`` (null where the rule family does not
    apply to the row's source). Row order is preserved."""
    cfg = cfg or FilterConfig()
    return _compute(df, cfg).drop(_RI, "code_minified", "code_generated", "code_lockfile")


# ----------------------------------------------------------------------------------------------
# rules


def _fail_expr(rule: _Rule) -> pl.Expr:
    col = pl.col(rule.stat)
    if rule.op == "flag":
        cond = col.fill_null(False)
    elif rule.op == "<":
        cond = (col < rule.threshold).fill_null(False)
    else:
        cond = (col > rule.threshold).fill_null(False)
    if rule.only_source is not None:
        cond = cond & (pl.col("source") == rule.only_source)
    if rule.skip_source is not None:
        cond = cond & (pl.col("source") != rule.skip_source)
    return cond


def apply_filters(df: pl.DataFrame, cfg: FilterConfig | None = None) -> StageResult:
    """Keep documents passing every enabled rule; reject the rest with the first failing rule.

    Kept rows carry the stat columns (to preview other thresholds later without recomputing).
    """
    cfg = cfg or FilterConfig()
    if not cfg.enabled:
        return StageResult(kept=df, rejected=to_rejected(df.clear(), STAGE, ""), stats={"dropped_by_rule": {}})
    rules = _rules(cfg)
    s = _compute(df, cfg)
    reason = pl.coalesce([pl.when(_fail_expr(r)).then(pl.lit(r.reason)) for r in rules]) if rules else None
    s = s.with_columns((reason if reason is not None else pl.lit(None, dtype=pl.String)).alias("__reason"))
    s = s.drop("code_minified", "code_generated", "code_lockfile", _RI)
    kept = s.filter(pl.col("__reason").is_null()).drop("__reason")
    bad = s.filter(pl.col("__reason").is_not_null())
    counts = dict(bad.group_by("__reason").len().iter_rows())
    order = [r.reason for r in rules]
    dropped = {k: int(counts[k]) for k in order if k in counts}
    rejected = to_rejected(bad.drop("reason", strict=False).rename({"__reason": "reason"}), STAGE)
    return StageResult(kept=kept, rejected=rejected, stats={"dropped_by_rule": dropped})
