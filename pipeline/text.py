"""Text primitives shared by dedup, decontamination and ablation: normalisation, word counts, n-gram hashes.

Everything is vectorised over the UTF-8 bytes of a whole batch with numpy.

A batch of texts is one byte buffer plus ``len(texts) + 1`` int64 offsets (document ``i`` is
``buf[offsets[i]:offsets[i + 1]]``); every function here works on that pair, never on one string at
a time.

* ``normalised_bytes``: ASCII lowercase, ASCII punctuation and Unicode General Punctuation dropped,
  Unicode spaces made spaces, whitespace runs collapsed to one space, ends trimmed (the shingling
  normalisation of MinHash dedup, also used to compare evaluation text);
* ``shingle_hashes``: ``ngram`` consecutive words (``"word"``) or characters (``"char"``) of each
  document of a normalised buffer, hashed with a 64-bit polynomial hash computed from prefix sums (every
  shingle costs O(1)) and mixed; a document with fewer than ``ngram`` units is one shingle;
* ``ngram_hashes``: the 64-bit word n-gram hashes of raw texts (normalised, then hashed).
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa

# Text bytes hashed at once by callers that chunk a shard: bounds the numpy position/prefix arrays (~40 B a
# byte); the cached powers of the shingle hash are grown to at least this size.
CHUNK_BYTES = 1 << 20

_P = 0x100000001B3  # odd multiplier of the polynomial shingle hash
_P_INV = pow(_P, -1, 1 << 64)
_WS = np.zeros(256, dtype=bool)
_WS[[9, 10, 11, 12, 13, 32]] = True
_PUNCT = np.zeros(256, dtype=bool)
_PUNCT[[*range(33, 48), *range(58, 65), *range(91, 97), *range(123, 127)]] = True
_LOWER = np.arange(256, dtype=np.uint8)
_LOWER[65:91] += 32


def utf8_buffers(texts: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """(bytes as uint8, int64 offsets of len(texts) + 1) of the texts (null = empty), zero-copy from Arrow."""
    arr = texts.fill_null("").cast(pl.Binary).rechunk().to_arrow()
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    arr = arr.cast(pa.large_binary())
    _, off_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(off_buf, dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.empty(0, np.uint8)
    if len(offsets) and (offsets[0] != 0 or offsets[-1] != len(data)):  # a slice of a larger buffer
        data, offsets = data[offsets[0] : offsets[-1]], offsets - offsets[0]
    return data, offsets


def ascii_lower(buf: np.ndarray) -> np.ndarray:
    """A copy of ``buf`` with ASCII letters lowercased (other bytes, UTF-8 sequences included, unchanged)."""
    return _LOWER[buf]


def collapse_whitespace(
    buf: np.ndarray, offsets: np.ndarray, drop: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Drop bytes where ``drop``; turn each inner whitespace run into one space and trim the ends.

    Returns the compacted bytes and their per-document offsets."""
    if drop is not None and drop.any():
        kept = np.flatnonzero(~drop)
        buf, offsets = buf[kept], np.searchsorted(kept, offsets).astype(np.int64)
    ws = _WS[buf]
    # candidates: the last byte of a whitespace run (followed by a non-space)
    cand = np.flatnonzero(ws[:-1] & ~ws[1:]) if len(buf) > 1 else np.empty(0, np.int64)
    # first non-space of each document: its start, unless it starts with whitespace (rare)
    first_solid = offsets[:-1].copy()
    lens = np.diff(offsets)
    for d in np.flatnonzero(lens > 0)[ws[offsets[:-1][lens > 0]]].tolist():
        seg = ~ws[offsets[d] : offsets[d + 1]]
        first_solid[d] += int(np.argmax(seg)) if seg.any() else int(lens[d])
    cdoc = np.searchsorted(offsets, cand, side="right") - 1
    cand = cand[(cand + 1 < offsets[1:][cdoc]) & (cand > first_solid[cdoc])]
    keep = ~ws
    keep[cand] = True
    out = buf.copy()
    out[cand] = 32
    pos = np.flatnonzero(keep)
    return out[pos], np.searchsorted(pos, offsets).astype(np.int64)


def punctuation_mask(low: np.ndarray) -> np.ndarray:
    """Bytes of a lowercased buffer to drop for shingling: ASCII punctuation and Unicode General Punctuation
    (curly quotes, dashes, ellipsis: U+2010-U+203F). Unicode spaces (NBSP, U+2000-U+200A) are turned into
    spaces in ``low`` itself, in place."""
    drop = _PUNCT[low]
    if len(low) >= 2:
        i = np.flatnonzero((low[:-1] == 0xC2) & (low[1:] == 0xA0))
        low[i] = 32
        low[i + 1] = 32
    if len(low) >= 3:
        i = np.flatnonzero((low[:-2] == 0xE2) & (low[1:-1] == 0x80))
        space = low[i + 2] <= 0x8A
        for k in range(3):
            low[i[space] + k] = 32
            drop[i[~space] + k] = True
    return drop


def normalised_bytes(texts: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """The shingling normalisation (ASCII lowercase, ASCII and Unicode punctuation dropped, Unicode spaces
    and whitespace runs -> one space, trimmed) of ``texts`` as one byte buffer plus per-text offsets."""
    raw, offsets = utf8_buffers(texts)
    low = ascii_lower(raw)
    return collapse_whitespace(low, offsets, punctuation_mask(low))


def word_counts(buf: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Words per document of a collapsed buffer (spaces + 1 for non-empty documents)."""
    n_docs = len(offsets) - 1
    sp_doc = np.searchsorted(offsets, np.flatnonzero(buf == 32), side="right") - 1
    return np.bincount(sp_doc, minlength=n_docs) + (np.diff(offsets) > 0)


def splitmix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finalizer over uint64 values: a cheap mix whose every output bit depends on every input bit."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def shingle_hashes(
    buf: np.ndarray, offsets: np.ndarray, shingle: str, ngram: int, bits64: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """32-bit (or 64-bit) hashes of every shingle of each document in a collapsed buffer, in document order,
    and the number of shingles per document. ``shingle`` is ``"word"`` (space-separated words) or ``"char"``
    (UTF-8 characters); a non-empty document with fewer than ``ngram`` units is one shingle, an empty one
    has none."""
    n_docs = len(offsets) - 1
    lens = np.diff(offsets)
    if shingle == "word":
        is_sp = buf == 32
        start = np.zeros(len(buf) + 1, dtype=bool)  # words start after a space or at a document start
        start[np.flatnonzero(is_sp) + 1] = True
        start[offsets[:-1][lens > 0]] = True
        unit_start = np.flatnonzero(start[:-1])
        unit_doc = np.searchsorted(offsets, unit_start, side="right") - 1
        # end (exclusive) of unit k = next space after it, or its document end
        sp = np.append(np.flatnonzero(is_sp), len(buf))
        sp_end = sp[np.searchsorted(sp, unit_start)]  # end (exclusive) = next space, or the buffer end
        unit_end = np.minimum(sp_end, offsets[1:][unit_doc])
    else:
        unit_start = np.flatnonzero((buf & 0xC0) != 0x80)  # UTF-8 character starts
        unit_doc = np.searchsorted(offsets, unit_start, side="right") - 1
        unit_end = np.concatenate([unit_start[1:], [len(buf)]])
        unit_end = np.minimum(unit_end, offsets[1:][unit_doc])
    units = np.bincount(unit_doc, minlength=n_docs)
    n = ngram
    k = np.arange(max(len(unit_start) - n + 1, 0))
    full = k[unit_doc[k] == unit_doc[k + n - 1]] if len(k) else k
    s_start, s_end, s_doc = unit_start[full], unit_end[full + n - 1], unit_doc[full]
    short = np.flatnonzero((units < n) & (units > 0))  # the whole text is the one shingle
    if len(short):
        s_start = np.concatenate([s_start, offsets[:-1][short]])
        s_end = np.concatenate([s_end, offsets[1:][short]])
        s_doc = np.concatenate([s_doc, short])
        order = np.argsort(s_doc, kind="stable")
        s_start, s_end, s_doc = s_start[order], s_end[order], s_doc[order]
    # polynomial prefix hash H[i] = sum_{j<i} (b_j + 1) P^j (mod 2^64). With N = len(buf),
    # (H[e] - H[s]) P^(N-e) = P^N sum_j (b_j + 1) P^-(e-j) depends on the shingle only, up to the
    # constant P^N, which one scalar inverse removes.
    n_all = len(buf)
    pw = _powers(n_all + 1)
    with np.errstate(over="ignore"):
        h = np.zeros(n_all + 1, dtype=np.uint64)
        np.cumsum((buf.astype(np.uint64) + np.uint64(1)) * pw[:n_all], out=h[1:])
        sh = (h[s_end] - h[s_start]) * pw[n_all - s_end] * np.uint64(pow(_P_INV, n_all, 1 << 64))
        sh = splitmix64(sh ^ (s_end - s_start).astype(np.uint64))
    counts = np.bincount(s_doc, minlength=n_docs)
    return (sh if bits64 else (sh >> np.uint64(32)).astype(np.uint32)), counts


_POW = np.ones(1, dtype=np.uint64)


def _powers(n: int) -> np.ndarray:
    """P^0 .. P^(n-1) mod 2^64, cached and grown on demand (shared by every chunk)."""
    global _POW
    if len(_POW) < n:
        with np.errstate(over="ignore"):
            _POW = np.concatenate([[np.uint64(1)], np.cumprod(np.full(max(n, CHUNK_BYTES + 1) - 1, _P, np.uint64))])
    return _POW


def ngram_hashes(texts: pl.Series, ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """64-bit hashes of each text's normalised word n-grams (a text shorter than ``ngram`` words counts as
    one n-gram, an empty or null one as none) and the number of n-grams per text."""
    if not len(texts):
        return np.empty(0, np.uint64), np.zeros(0, np.int64)
    buf, off = normalised_bytes(texts.fill_null(""))
    return shingle_hashes(buf, off, "word", ngram, bits64=True)
