"""The shared text primitives (``pipeline.text``): byte buffers, normalisation, word counts, shingle and n-gram
hashes, checked against plain-Python references."""

from __future__ import annotations

import numpy as np
import polars as pl

from pipeline.text import (
    ascii_lower,
    collapse_whitespace,
    ngram_hashes,
    normalised_bytes,
    punctuation_mask,
    shingle_hashes,
    splitmix64,
    utf8_buffers,
    word_counts,
)

_M64 = (1 << 64) - 1
_P = 0x100000001B3


def _docs(buf: np.ndarray, offsets: np.ndarray) -> list[bytes]:
    return [buf[a:b].tobytes() for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True)]


def _normalised(texts: list[str | None]) -> list[str]:
    buf, off = normalised_bytes(pl.Series(texts, dtype=pl.String))
    return [d.decode() for d in _docs(buf, off)]


def _mix(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def _shingle_hash(shingle: bytes) -> int:
    """The 64-bit shingle hash from its definition: sum of (byte + 1) * P^-(L - k), mixed with the length."""
    p_inv = pow(_P, -1, 1 << 64)
    n = len(shingle)
    poly = sum((c + 1) * pow(p_inv, n - k, 1 << 64) for k, c in enumerate(shingle)) & _M64
    return _mix(poly ^ n)


def test_utf8_buffers_of_nulls_unicode_and_slices() -> None:
    s = pl.Series(["ab", None, "", "é€", "xyz"], dtype=pl.String)
    buf, off = utf8_buffers(s)
    assert off.dtype == np.int64 and off.tolist() == [0, 2, 2, 2, 7, 10]
    assert _docs(buf, off) == [b"ab", b"", b"", "é€".encode(), b"xyz"]
    buf, off = utf8_buffers(s[3:])  # a slice of a larger buffer starts at offset 0
    assert off.tolist() == [0, 5, 8] and buf.tobytes() == "é€xyz".encode()
    buf, off = utf8_buffers(pl.Series([], dtype=pl.String))
    assert len(buf) == 0 and off.tolist() == [0]


def test_ascii_lower_leaves_other_bytes() -> None:
    raw = np.frombuffer("AbZ É[".encode(), dtype=np.uint8)
    assert ascii_lower(raw).tobytes() == "abz É[".encode()
    assert raw.tobytes() == "AbZ É[".encode()  # a copy


def test_collapse_whitespace_trims_and_joins_runs() -> None:
    texts = ["  a \t b\n\nc  ", "", "   ", "x", "\ny  z"]
    buf, off = utf8_buffers(pl.Series(texts))
    out, out_off = collapse_whitespace(buf, off)
    assert _docs(out, out_off) == [b"a b c", b"", b"", b"x", b"y z"]
    drop = np.zeros(len(buf), dtype=bool)
    drop[[2, 6]] = True  # "a" and "b" of the first text
    out, out_off = collapse_whitespace(buf, off, drop)
    assert _docs(out, out_off) == [b"c", b"", b"", b"x", b"y z"]


def test_punctuation_mask_and_unicode_spaces() -> None:
    text = "it\u2019s\u00a0a\u2002b\u2014c, d."
    buf, off = utf8_buffers(pl.Series([text]))
    low = ascii_lower(buf)
    drop = punctuation_mask(low)
    out, out_off = collapse_whitespace(low, off, drop)
    assert _docs(out, out_off) == [b"its a bc d"]  # NBSP and EN SPACE are spaces; quotes, dashes, ASCII dropped


def test_normalised_bytes() -> None:
    got = _normalised(["  Hello,  World!\n", "Don\u2019t\u00a0STOP\u2026 now", None, "\u00e9t\u00c9 -- \u201cok\u201d"])
    assert got == ["hello world", "dont stop now", "", "\u00e9t\u00c9 ok"]  # non-ASCII letters keep their case


def test_word_counts() -> None:
    buf, off = normalised_bytes(pl.Series(["one two  three", "", "   ", "solo", "a, b; c."]))
    assert word_counts(buf, off).tolist() == [3, 0, 0, 1, 3]


def test_shingle_hashes_follow_their_definition() -> None:
    texts = ["the cat sat on the mat", "cat sat on", "short", "", "cat sat on the"]
    buf, off = normalised_bytes(pl.Series(texts))
    h64, counts = shingle_hashes(buf, off, "word", 3, bits64=True)
    assert counts.tolist() == [4, 1, 1, 0, 2]  # a text shorter than ngram is one shingle, an empty one none
    expected = []
    for t in texts:
        w = t.split()
        grams = [" ".join(w[i : i + 3]) for i in range(len(w) - 2)] or ([t] if t else [])
        expected += [_shingle_hash(g.encode()) for g in grams]
    assert h64.dtype == np.uint64 and h64.tolist() == expected
    h32, counts32 = shingle_hashes(buf, off, "word", 3)
    assert h32.dtype == np.uint32 and np.array_equal(h32, (h64 >> np.uint64(32)).astype(np.uint32))
    assert np.array_equal(counts32, counts)
    # equal shingles hash equally wherever they are: "cat sat on" in the first, second and last text
    assert h64[1] == h64[4] == h64[6] and h64[2] == h64[7]


def test_char_shingles_count_characters() -> None:
    buf, off = normalised_bytes(pl.Series(["abcd", "\u00e9t\u00e9", "ab"]))
    hv, counts = shingle_hashes(buf, off, "char", 3, bits64=True)
    assert counts.tolist() == [2, 1, 1]
    want = [b"abc", b"bcd", "\u00e9t\u00e9".encode(), b"ab"]
    assert hv.tolist() == [_shingle_hash(s) for s in want]


def test_hashes_do_not_depend_on_the_batch() -> None:
    texts = ["alpha beta gamma delta epsilon", "zeta eta theta", "alpha beta gamma"]
    together, counts = ngram_hashes(pl.Series(texts), 2)
    alone = [ngram_hashes(pl.Series([t]), 2)[0] for t in texts]
    assert np.array_equal(together, np.concatenate(alone)) and counts.tolist() == [4, 2, 2]


def test_ngram_hashes() -> None:
    a, ca = ngram_hashes(pl.Series(["The cat, sat!", None, "the  CAT sat"]), 2)
    assert ca.tolist() == [2, 0, 2] and a[:2].tolist() == a[2:].tolist()
    buf, off = normalised_bytes(pl.Series(["The cat, sat!"]))
    assert np.array_equal(a[:2], shingle_hashes(buf, off, "word", 2, bits64=True)[0])
    empty, ce = ngram_hashes(pl.Series([], dtype=pl.String), 13)
    assert empty.dtype == np.uint64 and len(empty) == 0 and ce.dtype == np.int64 and len(ce) == 0


def test_splitmix64_matches_its_definition() -> None:
    z = np.array([0, 1, 0xDEADBEEF, _M64], dtype=np.uint64)
    with np.errstate(over="ignore"):
        got = splitmix64(z)
    assert got.tolist() == [_mix(int(v)) for v in z.tolist()]
