"""A linear language identifier over hashed character n-grams and words (``linear75``).

Features per text: character 1- to 4-grams inside space-padded words and whole words, each hashed
into its own block of buckets, weighted by sublinear term frequency times inverse document
frequency, and L2-normalised per block. Scores are one linear layer (a linear SVM trained by
``pipeline.training.langid.train_linear``), turned into probabilities by a softmax with a fitted
temperature. Unlike fastText's 64-dimensional bottleneck every n-gram keeps its own weight per
language, which is what separates close pairs (Malay/Indonesian, Bokmål/Nynorsk/Danish,
Xhosa/Zulu).

Feature extraction is vectorised with numpy over a whole batch: the texts are joined into one
code-point array and each n-gram's hash is built incrementally from the (n-1)-gram's, so no
Python loop runs per n-gram.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

MAX_N = 4
CHAR_BITS = 18
WORD_BITS = 18
_P = np.uint64(0x100000001B3)  # FNV-64 prime: the polynomial base of the rolling hash
_MIX = np.uint64(0x9E3779B97F4A7C15)  # golden-ratio multiplier: top bits become the bucket


def _codepoints(texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Code points of ' t0 ' + ' t1 ' + ..., the document of each position, and each one's end."""
    padded = [f" {t} " for t in texts]
    cp = np.frombuffer("".join(padded).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    lengths = np.fromiter(map(len, padded), dtype=np.int64, count=len(padded))
    ends = np.cumsum(lengths)
    doc = np.repeat(np.arange(len(texts), dtype=np.int64), lengths)
    return cp, doc, ends[doc]


def _is_word_char(cp: np.ndarray) -> np.ndarray:
    """Letters and digits; ASCII, Latin-1 and general/CJK punctuation and symbols separate words."""
    c = cp.astype(np.int64)
    ascii_word = ((c >= 97) & (c <= 122)) | ((c >= 65) & (c <= 90)) | ((c >= 48) & (c <= 57))
    punct = (
        (c < 128)
        | ((c >= 0x80) & (c <= 0xBF))
        | (c == 0xD7)
        | (c == 0xF7)
        | ((c >= 0x2000) & (c <= 0x206F))
        | ((c >= 0x3000) & (c <= 0x303F))
        | ((c >= 0xFF00) & (c <= 0xFF0F))
    )
    return ascii_word | ~punct


def _bucket(h: np.ndarray, bits: int) -> np.ndarray:
    return ((h * _MIX) >> np.uint64(64 - bits)).astype(np.int64)


def _char_ngrams(cp: np.ndarray, doc: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(doc, bucket) of every character n-gram (n = 1..MAX_N) that does not cross a word boundary."""
    space = cp == 32
    pos = np.arange(len(cp), dtype=np.int64)
    h = np.zeros(len(cp), dtype=np.uint64)
    inner_space = np.zeros(len(cp), dtype=bool)
    docs, buckets = [], []
    for n in range(1, MAX_N + 1):
        m = len(cp) - n + 1
        if m <= 0:
            break
        h = h[:m] * _P + cp[n - 1 : n - 1 + m] + np.uint64(n)
        if n >= 3:  # a space strictly inside the n-gram means it spans two words
            inner_space = inner_space[:m] | space[n - 2 : n - 2 + m]
        else:
            inner_space = inner_space[:m]
        ok = (pos[:m] + n <= end[:m]) & ~inner_space
        if n == 1:
            ok &= ~space  # the padding space alone says nothing
        docs.append(doc[:m][ok])
        buckets.append(_bucket(h[ok], CHAR_BITS))
    return np.concatenate(docs), np.concatenate(buckets)


def _words(cp: np.ndarray, doc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(doc, bucket) of every maximal run of word characters, hashed position-independently."""
    word = _is_word_char(cp)
    # Runs start where a word char follows a non-word char (position 0 of each text is a space).
    edge = np.diff(np.concatenate(([False], word, [False])).astype(np.int8))
    starts, stops = np.flatnonzero(edge == 1), np.flatnonzero(edge == -1)
    if not len(starts):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    # Span hash = sum over the span of (cp + 1) * P^(stop - 1 - j): a prefix sum of the terms
    # weighted by P^-j, rescaled by P^(stop - 1). P is odd, so it has an inverse modulo 2^64.
    p_inv = np.uint64(pow(int(_P), -1, 1 << 64))
    n = len(cp)
    powers = np.concatenate(([np.uint64(1)], np.cumprod(np.full(n - 1, _P, dtype=np.uint64))))
    inv_powers = np.concatenate(([np.uint64(1)], np.cumprod(np.full(n - 1, p_inv, dtype=np.uint64))))
    prefix = np.concatenate(([np.uint64(0)], np.cumsum((cp + np.uint64(1)) * inv_powers, dtype=np.uint64)))
    h = (prefix[stops] - prefix[starts]) * powers[stops - 1]
    return doc[starts], _bucket(h, WORD_BITS)


def _counts(docs: np.ndarray, buckets: np.ndarray, n_docs: int, width: int) -> sp.csr_matrix:
    keys, counts = np.unique(docs * width + buckets, return_counts=True)
    return sp.csr_matrix(
        (counts.astype(np.float32), (keys // width, keys % width)), shape=(n_docs, width), dtype=np.float32
    )


def raw_counts(texts: list[str]) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Term counts of the character n-gram block and the word block, one row per text."""
    cp, doc, end = _codepoints(texts)
    char = _counts(*_char_ngrams(cp, doc, end), len(texts), 1 << CHAR_BITS)
    word = _counts(*_words(cp, doc), len(texts), 1 << WORD_BITS)
    return char, word


def tfidf(counts: sp.csr_matrix, idf: np.ndarray) -> sp.csr_matrix:
    """Sublinear tf (1 + log count) times idf, each row L2-normalised (empty rows stay zero)."""
    x = counts.copy()
    x.data = (1.0 + np.log(x.data)) * idf[x.indices]
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sp.csr_matrix(sp.diags(1.0 / norms) @ x, dtype=np.float32)


def idf_of(counts: sp.csr_matrix) -> np.ndarray:
    """Smoothed inverse document frequency per bucket: log((1 + n) / (1 + df)) + 1."""
    df = np.bincount(counts.indices, minlength=counts.shape[1])
    return (np.log((1 + counts.shape[0]) / (1 + df)) + 1).astype(np.float32)


def features(texts: list[str], char_idf: np.ndarray, word_idf: np.ndarray) -> sp.csr_matrix:
    char, word = raw_counts(texts)
    return sp.hstack([tfidf(char, char_idf), tfidf(word, word_idf)], format="csr")


@dataclass(frozen=True)
class LinearLangId:
    labels: list[str]
    weights: sp.csr_matrix  # (features, languages)
    bias: np.ndarray
    char_idf: np.ndarray
    word_idf: np.ndarray
    temperature: float  # softmax(temperature * score) is the reported probability

    def scores(self, texts: list[str]) -> np.ndarray:
        x = features(texts, self.char_idf, self.word_idf)
        return np.asarray((x @ self.weights).todense()) + self.bias

    def predict(self, texts: list[str], batch: int = 2048) -> tuple[list[str], np.ndarray]:
        langs: list[str] = []
        probs = np.zeros(len(texts))
        for start in range(0, len(texts), batch):
            z = self.temperature * self.scores(texts[start : start + batch])
            z -= z.max(axis=1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(axis=1, keepdims=True)
            top = p.argmax(axis=1)
            langs.extend(self.labels[i] for i in top)
            probs[start : start + len(top)] = p[np.arange(len(top)), top]
        return langs, probs

    def save(self, path: Path) -> None:
        """int8 weights with a scale per language, stored sparse (zeros are pruned in training)."""
        w = self.weights.tocsc()
        scale = np.array([np.abs(w[:, j].data).max(initial=0.0) / 127 or 1.0 for j in range(w.shape[1])])
        wq = sp.csr_matrix(w @ sp.diags(1.0 / scale))
        wq.data = np.round(wq.data)
        wq.eliminate_zeros()
        np.savez_compressed(
            path,
            labels=np.array(self.labels),
            w_indptr=wq.indptr.astype(np.int32),
            w_indices=wq.indices.astype(np.uint8),
            w_data=wq.data.astype(np.int8),
            w_shape=np.array(wq.shape),
            scale=scale.astype(np.float32),
            bias=self.bias.astype(np.float32),
            char_idf=self.char_idf.astype(np.float16),
            word_idf=self.word_idf.astype(np.float16),
            temperature=np.array(self.temperature),
        )

    @classmethod
    def load(cls, path: Path) -> LinearLangId:
        z = np.load(path)
        wq = sp.csr_matrix(
            (z["w_data"].astype(np.float32), z["w_indices"].astype(np.int32), z["w_indptr"]),
            shape=tuple(z["w_shape"]),
        )
        return cls(
            labels=[str(x) for x in z["labels"]],
            weights=sp.csr_matrix(wq @ sp.diags(z["scale"].astype(np.float32)), dtype=np.float32),
            bias=z["bias"],
            char_idf=z["char_idf"].astype(np.float32),
            word_idf=z["word_idf"].astype(np.float32),
            temperature=float(z["temperature"]),
        )
