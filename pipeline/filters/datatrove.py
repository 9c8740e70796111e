"""datatrove 0.10's definitions (``FilterConfig.definitions="datatrove"``), for like-for-like benchmarks.

Every place where datatrove reads the Gopher or FineWeb rules differently from our reading of the
papers (``pipeline.filters.definitions``) is an override here:

* words are its spaCy tokens (``pipeline.filters.datatrove_words``, a regex mirror of the tokenizer),
  tokenised once per batch and read by the Gopher quality and repetition statistics; a word is a
  token with a char outside its ``PUNCTUATION_SET``; an alphabetic word has a letter (``str.isalpha``);
* stop words are counted distinct and case-sensitive;
* lines: blank lines count (CRLF normalised), duplicate lines are the runs of ``\\n`` collapsed;
  paragraphs are split at two or more newlines; repetition fractions are over ``len(text)``;
* n-grams are joined by spaces (their characters count the separators); the most frequent one is
  the first seen among ties (``Counter.most_common``), and a document whose n-grams are all distinct
  still scores its first n-gram once; duplicated n-grams follow its greedy scan (``find_all_duplicate``);
* FineWeb: a line ends in a sentence terminator (no closing quote after it), bounds are strict
  (ratio < / > threshold), the list ratio is over spaCy tokens.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from pipeline.filters.datatrove_words import dt_word_count, dt_words
from pipeline.filters.definitions import Definitions
from pipeline.filters.repetition import WordTable, group_counts

if TYPE_CHECKING:
    from pipeline.filters.rules import Op, Rule

# datatrove's reading: a char outside its PUNCTUATION_SET (datatrove.utils.text: ASCII and CJK marks,
# control chars, and its TERMINAL_PUNCTUATION, which is Unicode's Sentence_Terminal plus three Khmer signs)
DT_NON_SYMBOL = (
    r"[^!/—”:％１〈&(、━\\【#%「」，】；+^\]~“《„';’{|∶´\[=\-`*．（–？！：$～«〉,><》)?）。…@_.\"}►»"
    r"\x00-\x08\x0b\x0c\r\x0e-\x1f\x7f-\x9f\p{Sentence_Terminal}៖៙៚]"
)
# datatrove: the line's last char is in TERMINAL_PUNCTUATION (Sentence_Terminal plus three Khmer signs)
DT_FINEWEB_TERMINAL = r"[\p{Sentence_Terminal}៖៙៚]$"
_STRICT: dict[str, Op] = {"<=": "<", ">=": ">"}


class DatatroveDefinitions(Definitions):
    """datatrove 0.10's reading of the Gopher and FineWeb rules."""

    word_char = DT_NON_SYMBOL
    alpha_char = r"\p{L}"  # Python's str.isalpha is the letter categories
    rep_lines = "__rlines"
    fineweb_terminal = DT_FINEWEB_TERMINAL
    shared_columns = ("__dtw",)

    def tokenise(self, prose: pl.DataFrame) -> pl.DataFrame:
        """The spaCy-like word tokens, once, for the Gopher quality and repetition statistics."""
        return prose.with_columns(dt_words(pl.col("text").fill_null("")).alias("__dtw"))

    def prose_parts(self, text: pl.Expr) -> list[pl.Expr]:
        """Blank lines count (CRLF normalised); ``__rlines``: newline runs collapsed; paragraphs at 2+ newlines."""
        return [
            pl.col("__dtw").alias("__words"),
            text.str.replace_all(r"\r\n?", "\n")
            .str.strip_suffix("\n")
            .str.split("\n")
            .list.eval(pl.element().str.strip_chars())
            .alias("__lines"),
            text.str.replace_all(r"\n+", "\n").str.split("\n").alias("__rlines"),
            text.str.strip_chars().str.replace_all(r"\n{2,}", "\x00").str.split("\x00").alias("__paras"),
        ]

    def stop_word_count(self, words: pl.Expr, stop_words: list[str]) -> pl.Expr:
        """Distinct stop words, case-sensitive."""
        return words.list.unique().list.eval(pl.element().is_in(stop_words)).list.sum()

    def rep_char_denominator(self, text: pl.Expr) -> pl.Expr | None:
        """``len(text)``."""
        return text.str.len_chars()

    def ngram_words(self) -> pl.Expr:
        """The spaCy-like tokens of ``tokenise``."""
        return pl.col("__dtw")

    def ngram_chars(self, starts: np.ndarray, n: int, words: WordTable) -> np.ndarray:
        """The words' characters plus the n - 1 spaces joining them."""
        return super().ngram_chars(starts, n, words) + n - 1

    def top_ngram_ranks(
        self, hashes: np.ndarray, starts: np.ndarray, chars: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Ties go to the n-gram seen first (``Counter.most_common``)."""
        cnt, first_of = group_counts(hashes, first=True)
        return cnt, np.int64(1 << 40) - 1 - starts[first_of]

    def top_ngram_without_repeat(self, n: int, words: WordTable) -> np.ndarray:
        """datatrove also scores a document whose n-grams are all distinct: its first n-gram, once."""
        out = np.zeros(words.ndocs)
        pos, cs, wl = words.pos, words.cs, words.wl
        first = np.flatnonzero(np.diff(pos, prepend=-1))  # each document's first word
        first = first[np.bincount(pos, minlength=words.ndocs)[pos[first]] >= n]
        out[pos[first]] = cs[first + n - 1] - cs[first] + wl[first] + n - 1
        return out

    def dup_ngram_chars(self, starts: np.ndarray, hashes: np.ndarray, n: int, words: WordTable) -> np.ndarray:
        """The characters of the n-grams datatrove's greedy scan finds repeated (``_greedy_picks``)."""
        pk, chars = _greedy_picks(starts, hashes, n, words.cs, words.wl)
        return np.bincount(words.pos[pk], weights=chars, minlength=words.ndocs)

    def ngram_denominator(self, text_chars: pl.Expr, word_chars: pl.Expr) -> pl.Expr:
        """``len(text)``."""
        return text_chars

    def fineweb_tokens(self, text: pl.Expr) -> pl.Expr:
        """The spaCy-like tokens, counted without building the list."""
        return dt_word_count(text)

    def op(self, rule: Rule) -> Op:
        """datatrove's FineWebQualityFilter drops on ratio < / > threshold: the paper's bounds are inclusive."""
        return _STRICT.get(rule.op, rule.op) if rule.family == "fineweb" else rule.op


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
