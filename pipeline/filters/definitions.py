"""The paper definitions (``FilterConfig.definitions="paper"``): what a word, a line, a repeat is.

Where the papers leave room, this says what we do. ``pipeline.filters.datatrove`` subclasses it with
datatrove 0.10's reading; ``FilterConfig.reading`` picks one object per batch and every statistic
module asks it, so no statistic branches on the definitions itself.

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
* FineWeb: a line ends in punctuation if it ends in a Unicode sentence terminator, closing quotes or
  brackets allowed after it; the list ratio is newlines over ``\\w+|[^\\w\\s]`` tokens; bounds are
  inclusive, as the paper states them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from pipeline.filters.repetition import WordTable, covered_words, group_counts

if TYPE_CHECKING:
    from pipeline.filters.rules import Op, Rule

# A word counts as a word if it has one char that is not punctuation/symbol.
NON_SYMBOL = r"[^\p{P}\p{S}]"
_STRIP_PUNCT = r"^[\p{P}\p{S}]+|[\p{P}\p{S}]+$"
# FineWeb's "terminal punctuation": any Unicode sentence terminator, plus closing quotes after one.
FINEWEB_TERMINAL = r"[\p{Sentence_Terminal}]['\"”’)\]]*$"


class Definitions:
    """The paper reading. Subclasses override what they read differently (see ``DatatroveDefinitions``)."""

    word_char = NON_SYMBOL  # a word (for the Gopher word count and mean length) has one char matching this
    alpha_char = r"\p{Alphabetic}"  # a word with one char matching this is an alphabetic word
    rep_lines = "__lines"  # the line list (of ``prose_parts``) the duplicate-line fractions count
    fineweb_terminal = FINEWEB_TERMINAL  # a line matching this ends in punctuation
    shared_columns: tuple[str, ...] = ()  # the columns ``tokenise`` adds

    # --- prose (Gopher quality, line and paragraph repetition) ---

    def tokenise(self, prose: pl.DataFrame) -> pl.DataFrame:
        """Columns computed once for the prose rows and read by several statistics (here: none)."""
        return prose

    def prose_parts(self, text: pl.Expr) -> list[pl.Expr]:
        """``__words`` (word tokens), ``__lines`` (non-blank stripped lines), ``__paras`` (paragraphs)."""
        return [
            text.str.extract_all(r"\S+").alias("__words"),
            text.str.split("\n")
            .list.eval(pl.element().str.strip_chars())
            .list.filter(pl.element() != "")
            .alias("__lines"),
            text.str.replace_all(r"\n\s*\n", "\x00")
            .str.split("\x00")
            .list.eval(pl.element().str.strip_chars())
            .list.filter(pl.element() != "")
            .alias("__paras"),
        ]

    def stop_word_count(self, words: pl.Expr, stop_words: list[str]) -> pl.Expr:
        """Occurrences of the stop words, lowercased, surrounding punctuation stripped."""
        stop = [w.lower() for w in stop_words]
        return words.list.eval(pl.element().str.to_lowercase().str.replace_all(_STRIP_PUNCT, "").is_in(stop)).list.sum()

    def rep_char_denominator(self, text: pl.Expr) -> pl.Expr | None:
        """What the duplicate line/paragraph char fractions divide by; None: the parts' own chars."""
        return None

    # --- n-gram repetition (pipeline.filters.repetition) ---

    def ngram_words(self) -> pl.Expr:
        """The word list n-grams are made of, per prose row."""
        return pl.col("text").fill_null("").str.extract_all(r"\S+")

    def ngram_chars(self, starts: np.ndarray, n: int, words: WordTable) -> np.ndarray:
        """Characters of the n-grams starting at ``starts``: their words' characters."""
        return words.cs[starts + n - 1] - words.cs[starts] + words.wl[starts]

    def top_ngram_ranks(
        self, hashes: np.ndarray, starts: np.ndarray, chars: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per n-gram occurrence: how often it occurs in its document, and the tie-break among the
        equally frequent (higher wins): the longer n-gram."""
        cnt, _ = group_counts(hashes, first=False)
        return cnt, chars

    def top_ngram_without_repeat(self, n: int, words: WordTable) -> np.ndarray:
        """``rep_top{n}gram`` characters of a document none of whose n-grams repeats: none."""
        return np.zeros(words.ndocs)

    def dup_ngram_chars(self, starts: np.ndarray, hashes: np.ndarray, n: int, words: WordTable) -> np.ndarray:
        """Per document, the characters of the words covered by the repeated n-grams at ``starts``
        (every occurrence, overlaps once)."""
        covered = covered_words(starts, n, words.ri)
        return np.bincount(words.pos[covered], weights=words.wl[covered], minlength=words.ndocs)

    def ngram_denominator(self, text_chars: pl.Expr, word_chars: pl.Expr) -> pl.Expr:
        """What the n-gram fractions divide by: the document's word characters."""
        return word_chars.fill_null(0)

    # --- FineWeb ---

    def fineweb_tokens(self, text: pl.Expr) -> pl.Expr:
        """Word tokens the FineWeb list ratio (newlines per token) divides by."""
        return text.str.count_matches(r"\w+|[^\w\s]")

    # --- rules ---

    def op(self, rule: Rule) -> Op:
        """The comparison ``rule`` runs with (the table's, as the papers state the bounds)."""
        return rule.op
