"""Exact + MinHash-LSH dedup: clusters, keeper choice, determinism, shards."""

from __future__ import annotations

import random

import numpy as np
import polars as pl
import pytest
import xxhash
from datasketch import MinHash
from datasketch.lsh import _optimal_param
from pydantic import ValidationError

from pipeline.dedup import (
    DedupConfig,
    _minhash,
    apply_duplicates,
    cluster_summary,
    dedup_frames,
    find_duplicates,
    signatures,
)

_VOCAB = [f"{w}{i}" for i, w in enumerate(["alpha", "beta", "gamma", "delta", "omega"] * 1000)]


def _text(n: int = 300, seed: int = 0) -> list[str]:
    return random.Random(seed).sample(_VOCAB, n)


def _change(words: list[str], positions: list[int], tag: str) -> list[str]:
    out = list(words)
    for p in positions:
        out[p] = f"changed{tag}{p}"
    return out


def _docs(rows: list[tuple[str, str]], source: str | list[str] = "web") -> pl.DataFrame:
    srcs = source if isinstance(source, list) else [source] * len(rows)
    return pl.DataFrame(
        {
            "id": [r[0] for r in rows],
            "text": [r[1] for r in rows],
            "source": srcs,
            "url": [None] * len(rows),
            "path": [f"f#{r[0]}" for r in rows],
            "meta": ["{}"] * len(rows),
        },
        schema={c: pl.String for c in ("id", "text", "source", "url", "path", "meta")},
    )


def _removed(df: pl.DataFrame, cfg: DedupConfig | None = None) -> dict[str, tuple[str, str]]:
    rm = find_duplicates(signatures(df, cfg), cfg)
    return {i: (d, r) for i, d, r in rm.select("id", "duplicate_of", "reason").iter_rows()}


def _share_band(sigs: pl.DataFrame, a: str, b: str) -> bool:
    ba = sigs.filter(pl.col("id") == a)["bands"][0].to_list()
    bb = sigs.filter(pl.col("id") == b)["bands"][0].to_list()
    return any(x == y for x, y in zip(ba, bb, strict=True))


def test_minhash_matches_datasketch() -> None:
    words = " ".join(_text(50)).lower().split()
    shingles = [" ".join(words[i : i + 5]).encode() for i in range(len(words) - 4)]
    ref = MinHash(num_perm=128, seed=1, hashfunc=xxhash.xxh32_intdigest)
    ref.update_batch(shingles)
    hv = np.array([xxhash.xxh32_intdigest(s) for s in shingles], dtype=np.uint32)
    ours = _minhash(hv, np.array([len(shingles)]), 128, 1)[0]
    assert np.array_equal(ours, ref.hashvalues)


def test_band_params() -> None:
    assert DedupConfig().band_params() == _optimal_param(0.8, 128, 0.5, 0.5)
    assert DedupConfig(bands=16, rows=8).band_params() == (16, 8)
    with pytest.raises(ValidationError):
        DedupConfig(bands=16)
    with pytest.raises(ValidationError):
        DedupConfig(bands=20, rows=8)
    with pytest.raises(ValidationError):
        DedupConfig(keep_order=["size"])


def test_signature_columns() -> None:
    sigs = signatures(_docs([("a", " ".join(_text())), ("b", "two words")]))
    assert sigs.columns == ["id", "source", "length", "n_words", "exact_hash", "bands"]
    assert sigs["exact_hash"].dtype == pl.UInt64
    b, _ = DedupConfig().band_params()
    assert sigs["bands"][0].len() == b and sigs["bands"][1] is None


def test_exact_duplicates_whitespace_and_case() -> None:
    t = " ".join(_text(40))
    df = _docs([("a", t), ("b", "  " + t.upper().replace(" ", " \n\t ") + " "), ("c", t.title()),
                ("u", " ".join(_text(40, seed=9)))])
    rm = _removed(df)
    # b is the longest raw text, so it is kept
    assert rm == {"a": ("b", "exact_duplicate"), "c": ("b", "exact_duplicate")}


def test_near_duplicates_cluster_and_unrelated_do_not() -> None:
    w = _text(300)
    df = _docs([("orig", " ".join(w)), ("edit", " ".join(_change(w, [40, 200], "x"))),
                ("other1", " ".join(_text(300, seed=1))), ("other2", " ".join(_text(300, seed=2)))])
    rm = _removed(df)
    assert set(rm) <= {"orig", "edit"} and len(rm) == 1
    removed_id, (keeper, reason) = next(iter(rm.items()))
    assert reason == "near_duplicate" and {removed_id, keeper} == {"orig", "edit"}


def test_keep_order_length_then_source_then_id() -> None:
    t = " ".join(_text(30))
    # same length: book beats web beats code; then smallest id
    df = _docs([("z", t), ("y", t), ("x", t), ("w", t)], source=["web", "book", "code", "book"])
    assert _removed(df) == {"z": ("w", "exact_duplicate"), "y": ("w", "exact_duplicate"),
                            "x": ("w", "exact_duplicate")}
    cfg = DedupConfig(source_priority=["code", "book", "web", "other"])
    assert {d for d, _ in _removed(df, cfg).values()} == {"x"}
    # longer text wins over source priority (trailing space makes it longer; same normalised text)
    df2 = _docs([("b", t), ("w", t + "   ")], source=["book", "web"])
    assert _removed(df2) == {"b": ("w", "exact_duplicate")}


def test_deterministic_under_shuffle_and_sharding() -> None:
    rows = []
    for k in range(6):
        w = _text(300, seed=100 + k)
        rows += [(f"c{k}_0", " ".join(w)), (f"c{k}_1", " ".join(_change(w, [10 + k], "a"))),
                 (f"c{k}_2", " ".join(w).upper()), (f"c{k}_3", " ".join(_change(w, [150], "b")))]
    rows += [(f"solo{i}", " ".join(_text(200, seed=500 + i))) for i in range(5)]
    df = _docs(rows)
    ref = find_duplicates(signatures(df))
    for seed in range(3):
        shuffled = df.sample(fraction=1.0, shuffle=True, seed=seed)
        shards = [shuffled[i::3] for i in range(3)]
        got = find_duplicates(pl.concat([signatures(s) for s in shards]))
        assert got.equals(ref)
    assert ref["id"].str.starts_with("solo").sum() == 0
    assert ref["cluster_size"].max() <= 4


def test_transitive_cluster() -> None:
    # find a chain A~B~C whose ends share no LSH band directly (deterministic search over seeds)
    for seed in range(50):
        a = _text(300, seed=1000 + seed)
        b = _change(a, [30, 60], "b")
        c = _change(b, [230, 260, 290], "c")
        df = _docs([("A", " ".join(a)), ("B", " ".join(b)), ("C", " ".join(c))])
        sigs = signatures(df)
        if _share_band(sigs, "A", "B") and _share_band(sigs, "B", "C") and not _share_band(sigs, "A", "C"):
            break
    else:
        pytest.fail("no chain with A !~ C found")
    rm = find_duplicates(sigs)
    assert len(rm) == 2 and rm["cluster_size"].to_list() == [3, 3]
    assert rm["cluster_id"].n_unique() == 1
    assert cluster_summary(rm)["clusters"] == 1


def test_exact_and_near_end_in_one_cluster() -> None:
    w = _text(300, seed=7)
    df = _docs([("x", " ".join(w)), ("x_exact", " ".join(w).upper()),
                ("y_near", " ".join(_change(w, [100, 101], "n")) + " tail words here")])
    rm = find_duplicates(signatures(df))
    assert rm["cluster_id"].unique().to_list() == ["y_near"]
    assert dict(rm.select("id", "reason").iter_rows()) == {"x": "near_duplicate", "x_exact": "near_duplicate"}
    s = cluster_summary(rm)
    assert s == {"clusters": 1, "removed": 2, "removed_exact": 0, "removed_near": 2,
                 "largest_clusters": [{"cluster_id": "y_near", "size": 3}]}


def test_cross_shard_duplicates_and_apply() -> None:
    w = _text(300, seed=3)
    shard1 = _docs([("s1a", " ".join(w)), ("s1b", " ".join(_text(300, seed=4)))])
    shard2 = _docs([("s2a", " ".join(_change(w, [5], "z")) + " extra"), ("s2b", "short dup text"),
                    ("s2c", "Short  dup text")])
    results = dedup_frames([shard1, shard2])
    r1, r2 = results
    assert r1.kept["id"].to_list() == ["s1b"]
    assert r1.rejected.select("id", "duplicate_of", "reason", "stage").rows() == [
        ("s1a", "s2a", "near_duplicate", "dedup")]
    # "Short  dup text" is one character longer: it is the keeper
    assert r2.kept["id"].to_list() == ["s2a", "s2c"]
    assert r2.rejected.select("id", "duplicate_of", "reason").rows() == [("s2b", "s2c", "exact_duplicate")]
    for shard, res in zip([shard1, shard2], results, strict=True):
        assert len(res.kept) + len(res.rejected) == len(shard)
        assert res.kept.columns == shard.columns


def test_short_docs_are_exact_only() -> None:
    df = _docs([("a", "one two three four"), ("b", "one two three five"), ("c", "ONE two three four")])
    cfg = DedupConfig(threshold=0.1, min_words=5)
    assert _removed(df, cfg) == {"c": ("a", "exact_duplicate")}
    sigs = signatures(df, cfg)
    assert sigs["bands"].null_count() == 3


def test_switches() -> None:
    w = _text(300, seed=11)
    df = _docs([("a", " ".join(w)), ("b", " ".join(w).upper()), ("c", " ".join(_change(w, [3], "q")))])
    assert _removed(df, DedupConfig(near=False)) == {"b": ("a", "exact_duplicate")}  # equal length: id order
    only_near = _removed(df, DedupConfig(exact=False))
    assert len(only_near) == 2  # a and b are also near duplicates (identical shingles)
    assert _removed(df, DedupConfig(exact=False, near=False)) == {}


def test_empty_inputs() -> None:
    empty = _docs([])
    rm = find_duplicates(signatures(empty))
    assert rm.is_empty()
    res = apply_duplicates(empty, rm)
    assert res.kept.is_empty() and res.rejected.is_empty()
