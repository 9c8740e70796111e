"""Token shards -> flat token streams -> (x, y) batches.

Each document becomes ``[bos] + tokens + [eos]`` and documents are concatenated in (file, row)
order, so a training window may span a document boundary; the bos/eos tokens tell the model
where one ends. Streams are int32 numpy arrays (4 bytes/token) and are widened to int64 only
per batch.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch


@dataclass(frozen=True)
class Manifest:
    vocab_size: int
    bos_id: int
    eos_id: int
    pad_id: int
    tokenizer: str
    raw: dict


def read_manifest(shards_dir: Path) -> Manifest:
    path = Path(shards_dir) / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is {shards_dir} a token-shard folder?")
    raw = json.loads(path.read_text())
    return Manifest(
        vocab_size=int(raw["vocab_size"]),
        bos_id=int(raw["bos_id"]),
        eos_id=int(raw["eos_id"]),
        pad_id=int(raw["pad_id"]),
        tokenizer=str(raw.get("tokenizer", "")),
        raw=raw,
    )


@dataclass(frozen=True)
class SplitStream:
    """One split as a flat stream; ``source_codes[i]`` indexes ``sources`` for token i."""

    tokens: np.ndarray  # int32
    source_codes: np.ndarray  # int8
    sources: tuple[str, ...]  # sorted, so codes do not depend on file order
    n_docs: int

    def by_source(self) -> dict[str, np.ndarray]:
        """Per-source streams; documents stay whole and in their original order."""
        return {s: self.tokens[self.source_codes == k] for k, s in enumerate(self.sources)}


def _table_stream(table: pa.Table, bos: int, eos: int) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised ``concat([bos] + doc + [eos] for doc in table['tokens'])``, plus doc lengths."""
    col = table.column("tokens").combine_chunks()
    lengths = pc.fill_null(pc.list_value_length(col), 0).to_numpy().astype(np.int64)
    values = pc.list_flatten(col).to_numpy(zero_copy_only=False).astype(np.int32)
    n_docs = len(lengths)
    out = np.empty(int(lengths.sum()) + 2 * n_docs, dtype=np.int32)
    doc_starts = np.cumsum(lengths + 2) - (lengths + 2)
    out[doc_starts] = bos
    out[doc_starts + lengths + 1] = eos
    # Token j of the flattened values belongs to document d and lands 1 + 2*d places later.
    out[np.arange(len(values)) + 1 + 2 * np.repeat(np.arange(n_docs), lengths)] = values
    return out, lengths + 2


def load_split(shards_dir: Path, split: str, manifest: Manifest) -> SplitStream:
    """Read ``{split}-*.parquet`` (sorted by name) into one stream."""
    files = sorted(Path(shards_dir).glob(f"{split}-*.parquet"))
    if not files:
        raise ValueError(f"no {split}-*.parquet shards in {shards_dir}")
    streams, doc_lens, doc_srcs = [], [], []
    for f in files:
        table = pq.read_table(f, columns=["source", "tokens"])
        stream, doc_len = _table_stream(table, manifest.bos_id, manifest.eos_id)
        streams.append(stream)
        doc_lens.append(doc_len)
        doc_srcs.append(np.asarray(table.column("source").fill_null("other").to_pylist(), dtype=str))
    tokens = np.concatenate(streams)
    if tokens.size and int(tokens.max()) >= manifest.vocab_size:
        raise ValueError(f"{split} shards hold token id {int(tokens.max())} >= vocab_size={manifest.vocab_size}")
    # Source codes per document, then per token (cheap int8 repeat, no per-token strings).
    src = np.concatenate(doc_srcs)
    sources = np.unique(src)
    codes = np.repeat(np.searchsorted(sources, src).astype(np.int8), np.concatenate(doc_lens))
    return SplitStream(tokens, codes, tuple(str(s) for s in sources), len(src))


def check_length(stream: np.ndarray, seq_len: int, what: str) -> None:
    if len(stream) < seq_len + 1:
        raise ValueError(
            f"{what} has only {len(stream)} tokens but a window needs seq_len+1={seq_len + 1}; "
            f"add more data or lower seq_len (e.g. seq_len={max(1, len(stream) - 1)})"
        )


class BatchSampler:
    """Random (x, y) windows of the training stream, reproducible from ``seed`` alone."""

    def __init__(self, stream: np.ndarray, batch_size: int, seq_len: int, seed: int) -> None:
        check_length(stream, seq_len, "the train split")
        self.stream = torch.from_numpy(stream)
        self.batch_size, self.seq_len = batch_size, seq_len
        self.gen = torch.Generator().manual_seed(seed)
        self.offsets = torch.arange(seq_len + 1)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        starts = torch.randint(0, len(self.stream) - self.seq_len, (self.batch_size,), generator=self.gen)
        window = self.stream[starts[:, None] + self.offsets].long()
        return window[:, :-1], window[:, 1:]


def eval_batches(
    stream: np.ndarray, batch_size: int, seq_len: int, max_batches: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Contiguous windows whose targets do not overlap, so each token is scored at most once.

    A stream shorter than one window still yields one shorter window (when it has >= 2 tokens),
    so a small source gets a loss instead of silently vanishing; a trailing partial window of a
    longer stream is dropped.
    """
    n_windows = (len(stream) - 1) // seq_len
    if n_windows == 0:
        if len(stream) >= 2:
            w = torch.from_numpy(stream).long()[None]
            yield w[:, :-1], w[:, 1:]
        return
    n_windows = min(n_windows, batch_size * max_batches)
    t = torch.from_numpy(stream)
    offsets = torch.arange(seq_len + 1)
    for b in range(0, n_windows, batch_size):
        starts = torch.arange(b, min(b + batch_size, n_windows)) * seq_len
        window = t[starts[:, None] + offsets].long()
        yield window[:, :-1], window[:, 1:]


def source_bytes(shards_dir: Path, split: str, manifest: Manifest, stream: SplitStream) -> dict[str, float] | None:
    """UTF-8 bytes per stream token for each source (bos/eos count as tokens of zero bytes), for
    bits per byte. Read from the shards' ``n_bytes`` column; older shards without it are decoded
    with the sentencepiece model the manifest names. None when neither is available."""
    files = sorted(Path(shards_dir).glob(f"{split}-*.parquet"))
    totals: dict[str, int] = {}
    sp = None
    for f in files:
        names = pq.read_schema(f).names
        if "n_bytes" in names:
            table = pq.read_table(f, columns=["source", "n_bytes"])
            n_bytes = table.column("n_bytes").fill_null(0).to_pylist()
        else:
            if sp is None:
                sp = _load_sentencepiece(Path(shards_dir), manifest)
                if sp is None:
                    return None
            table = pq.read_table(f, columns=["source", "tokens"])
            docs = table.column("tokens").to_pylist()
            n_bytes = [len(sp.decode([int(t) for t in doc or []]).encode()) for doc in docs]
        for source, n in zip(table.column("source").fill_null("other").to_pylist(), n_bytes, strict=True):
            totals[source] = totals.get(source, 0) + int(n)
    per_source = stream.by_source()
    return {s: totals[s] / len(per_source[s]) for s in per_source if totals.get(s) and len(per_source[s])}


def _load_sentencepiece(shards_dir: Path, manifest: Manifest):
    path = shards_dir / manifest.tokenizer if manifest.tokenizer else None
    if path is None or not path.is_file():
        return None
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_file=str(path))
