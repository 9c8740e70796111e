"""Exact + MinHash-LSH dedup: clusters, keeper choice, determinism, shards."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import xxhash
from datasketch import MinHash
from datasketch.lsh import _optimal_param
from pydantic import ValidationError

from pipeline.dedup.clustering import _plan
from pipeline.dedup.hashing import _minhash
from pipeline.dedup.stage import (
    DedupConfig,
    apply_duplicates,
    cluster_summary,
    dedup_report_rows,
    find_duplicates,
    load_index,
    removed_vs_kept,
    signatures,
    write_index,
)
from pipeline.schema import StageResult, to_rejected

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


def _dedup(frames: list[pl.DataFrame], cfg: DedupConfig | None = None) -> list[StageResult]:
    """The stage's three steps in-process, as the flow runs them: signatures per shard, clusters over all of
    them (against earlier runs' indexes), then each shard split by the removed table."""
    cfg = cfg or DedupConfig()
    removed = find_duplicates(pl.concat([signatures(f, cfg) for f in frames]), cfg, prior=load_index(cfg.against, cfg))
    return [apply_duplicates(f, removed) for f in frames]


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
    assert sigs.columns == ["id", "source", "length", "quality", "url_key", "n_words", "exact_hash", "bands"]
    assert sigs["exact_hash"].dtype == pl.UInt64
    b, _ = DedupConfig().band_params()
    assert sigs["bands"][0].len() == b and sigs["bands"][1] is None


def test_exact_duplicates_whitespace_and_case() -> None:
    t = " ".join(_text(40))
    df = _docs(
        [
            ("a", t),
            ("b", "  " + t.upper().replace(" ", " \n\t ") + " "),
            ("c", t.title()),
            ("u", " ".join(_text(40, seed=9))),
        ]
    )
    rm = _removed(df)
    # b is the longest raw text, so it is kept
    assert rm == {"a": ("b", "exact_duplicate"), "c": ("b", "exact_duplicate")}


def test_near_duplicates_cluster_and_unrelated_do_not() -> None:
    w = _text(300)
    df = _docs(
        [
            ("orig", " ".join(w)),
            ("edit", " ".join(_change(w, [40, 200], "x"))),
            ("other1", " ".join(_text(300, seed=1))),
            ("other2", " ".join(_text(300, seed=2))),
        ]
    )
    rm = _removed(df)
    assert set(rm) <= {"orig", "edit"} and len(rm) == 1
    removed_id, (keeper, reason) = next(iter(rm.items()))
    assert reason == "near_duplicate" and {removed_id, keeper} == {"orig", "edit"}


def test_keep_order_length_then_source_then_id() -> None:
    t = " ".join(_text(30))
    # same length: book beats web beats code; then smallest id
    df = _docs([("z", t), ("y", t), ("x", t), ("w", t)], source=["web", "book", "code", "book"])
    assert _removed(df) == {"z": ("w", "exact_duplicate"), "y": ("w", "exact_duplicate"), "x": ("w", "exact_duplicate")}
    cfg = DedupConfig(source_priority=["code", "book", "web", "other"])
    assert {d for d, _ in _removed(df, cfg).values()} == {"x"}
    # longer text wins over source priority (trailing space makes it longer; same normalised text)
    df2 = _docs([("b", t), ("w", t + "   ")], source=["book", "web"])
    assert _removed(df2) == {"b": ("w", "exact_duplicate")}


def test_deterministic_under_shuffle_and_sharding() -> None:
    rows = []
    for k in range(6):
        w = _text(300, seed=100 + k)
        rows += [
            (f"c{k}_0", " ".join(w)),
            (f"c{k}_1", " ".join(_change(w, [10 + k], "a"))),
            (f"c{k}_2", " ".join(w).upper()),
            (f"c{k}_3", " ".join(_change(w, [150], "b"))),
        ]
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
    df = _docs(
        [
            ("x", " ".join(w)),
            ("x_exact", " ".join(w).upper()),
            ("y_near", " ".join(_change(w, [100, 101], "n")) + " tail words here"),
        ]
    )
    rm = find_duplicates(signatures(df))
    assert rm["cluster_id"].unique().to_list() == ["y_near"]
    assert dict(rm.select("id", "reason").iter_rows()) == {"x": "near_duplicate", "x_exact": "near_duplicate"}
    s = cluster_summary(rm)
    assert {k: s[k] for k in ("clusters", "removed", "removed_exact", "removed_near")} == {
        "clusters": 1,
        "removed": 2,
        "removed_exact": 0,
        "removed_near": 2,
    }
    assert s["largest_clusters"] == [{"cluster_id": "y_near", "keeper": "y_near", "size": 3}]
    assert s["cluster_size_histogram"]["3"] == 1 and s["removed_by_source"]["web"]["removed"] == 2


def test_cross_shard_duplicates_and_apply() -> None:
    w = _text(300, seed=3)
    shard1 = _docs([("s1a", " ".join(w)), ("s1b", " ".join(_text(300, seed=4)))])
    shard2 = _docs(
        [("s2a", " ".join(_change(w, [5], "z")) + " extra"), ("s2b", "short dup text"), ("s2c", "Short  dup text")]
    )
    results = _dedup([shard1, shard2])
    r1, r2 = results
    assert r1.kept["id"].to_list() == ["s1b"]
    assert r1.rejected.select("id", "duplicate_of", "reason", "stage").rows() == [
        ("s1a", "s2a", "near_duplicate", "dedup")
    ]
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


# ----------------------------------------------------------------------------------------------
# keeper by quality, cross-run index, out-of-core scan, shingle options, verification, inspection


def test_keeper_prefers_quality_score() -> None:
    t = " ".join(_text(40, seed=21))
    df = _docs([("long", t + " and a longer tail here"), ("best", t), ("none", t + " tail")]).with_columns(
        pl.Series("quality_score", [0.2, 0.9, None], dtype=pl.Float64)
    )
    rm = _removed(df)
    assert {d for d, _ in rm.values()} == {"best"} and set(rm) == {"long", "none"}
    # without the quality key the longest text wins
    assert {d for d, _ in _removed(df, DedupConfig(keep_order=["length", "id"])).values()} == {"long"}


def test_rejected_rows_carry_cluster_detail() -> None:
    t = " ".join(_text(60, seed=22))
    res = _dedup([_docs([("a", t), ("b", t.upper()), ("c", t + " x")])])[0]
    import json

    details = [json.loads(d) for d in res.rejected["detail"]]
    assert res.rejected["duplicate_of"].to_list() == ["c", "c"]
    assert all(d["cluster_id"] == "c" and d["cluster_size"] == 3 for d in details)


def test_lazy_scan_of_parquet_matches_in_memory(tmp_path) -> None:
    rows = []
    for k in range(4):
        w = _text(300, seed=200 + k)
        rows += [
            (f"k{k}_0", " ".join(w)),
            (f"k{k}_1", " ".join(_change(w, [7], "m"))),
            (f"k{k}_2", " ".join(w).upper()),
        ]
    df = _docs(rows)
    ref = find_duplicates(signatures(df))
    for i in range(3):
        signatures(df[i::3]).write_parquet(tmp_path / f"s{i}.parquet")
    lazy = pl.concat([pl.scan_parquet(tmp_path / f"s{i}.parquet") for i in range(3)])
    assert find_duplicates(lazy).equals(ref)


def test_against_earlier_run_index(tmp_path) -> None:
    w1, w2 = _text(300, seed=31), _text(300, seed=32)
    run1 = _docs([("r1_a", " ".join(w1)), ("r1_b", " ".join(w2)), ("r1_a_copy", " ".join(w1).upper())])
    cfg1 = DedupConfig()
    sigs1 = signatures(run1, cfg1)
    rm1 = find_duplicates(sigs1, cfg1)
    index_dir = tmp_path / "run1" / "dedup_index"
    assert write_index(sigs1, rm1, index_dir, cfg1) == 2  # kept documents only
    # run 2: one near copy of a run-1 document, one exact copy, one new document
    run2 = _docs(
        [
            ("r2_near", " ".join(_change(w1, [50], "q")) + " and more words"),
            ("r2_exact", " ".join(w2)),
            ("r2_new", " ".join(_text(300, seed=33))),
        ]
    )
    cfg2 = DedupConfig(against=[str(tmp_path / "run1")])
    res = _dedup([run2], cfg2)[0]
    assert res.kept["id"].to_list() == ["r2_new"]
    got = dict(res.rejected.select("id", "duplicate_of").iter_rows())
    assert got == {"r2_near": "r1_a", "r2_exact": "r1_b"}  # earlier run's copy always wins, even if shorter
    rm2 = find_duplicates(signatures(run2, cfg2), cfg2, prior=load_index(cfg2.against, cfg2))
    assert rm2["against_earlier_run"].all() and not rm2["id"].str.starts_with("r1").any()
    verified = _dedup([run2], cfg2.model_copy(update={"verify": True}))[0]
    assert verified.kept["id"].to_list() == ["r2_new"]  # earlier-run pairs are trusted (no shingles kept)
    with pytest.raises(ValueError):
        load_index([str(index_dir)], DedupConfig(ngram=3))  # incompatible signatures


def test_char_shingles_find_near_duplicates() -> None:
    w = _text(200, seed=41)
    df = _docs([("a", " ".join(w)), ("b", " ".join(_change(w, [20], "c"))), ("z", " ".join(_text(200, seed=42)))])
    cfg = DedupConfig(shingle="char", ngram=7)
    rm = _removed(df, cfg)
    assert set(rm) | {d for d, _ in rm.values()} == {"a", "b"}


def test_unicode_punctuation_and_wrapping_do_not_hide_near_duplicates() -> None:
    words = _text(200, seed=43)
    plain = " ".join(w + ("'s" if i % 17 == 0 else "") for i, w in enumerate(words))
    fancy = plain.replace("'", "\u2019").replace(" ", "\u00a0", 3)
    wrapped = "\n".join(plain[i : i + 70] for i in range(0, len(plain), 70))  # may split words: near only
    df = _docs([("plain", plain), ("fancy", fancy), ("wrapped", plain.replace(" ", "\n   "))])
    rm = _removed(df)
    assert set(rm) == {"fancy", "wrapped"} or len(rm) == 2
    assert wrapped  # (kept for readability of the case above)


def test_verify_drops_candidates_below_threshold() -> None:
    a = _text(300, seed=51)
    b = a[:100] + _text(200, seed=52)  # Jaccard about 0.2
    df = _docs([("a", " ".join(a)), ("b", " ".join(b))])
    loose = DedupConfig(threshold=0.3, bands=64, rows=1)  # every shared minimum is a candidate
    assert len(_removed(df, loose)) == 1
    assert _removed(df, loose.model_copy(update={"verify": True})) == {}
    # a real near duplicate survives verification
    df2 = _docs([("a", " ".join(a)), ("c", " ".join(_change(a, [3], "v")))])
    assert len(_removed(df2, DedupConfig(verify=True))) == 1


def test_lsh_summary_reports_choice() -> None:
    s = DedupConfig().lsh_summary()
    assert (s["bands"], s["rows"]) == _optimal_param(0.8, 128, 0.5, 0.5)
    assert s["chosen_by"] == "datasketch optimiser" and 0 < s["p_false_negative_area"] < 1
    assert DedupConfig(fp_weight=0.2, fn_weight=0.8).band_params() == _optimal_param(0.8, 128, 0.2, 0.8)


def test_removed_vs_kept_pairs() -> None:
    w, v = _text(300, seed=61), _text(300, seed=62)
    df = _docs(
        [
            ("a", " ".join(w)),
            ("b", " ".join(w).upper()),
            ("c", " ".join(w) + " end"),
            ("d", " ".join(v)),
            ("e", " ".join(v).title()),
        ]
    )
    res = _dedup([df])[0]
    assert dict(res.rejected.select("id", "duplicate_of").iter_rows()) == {"a": "c", "b": "c", "e": "d"}
    # a later stage removes keeper d; the run's rejected table holds other stages' rows too
    final = res.kept.filter(pl.col("id") != "d")
    rejected = pl.concat([res.rejected, to_rejected(res.kept.filter(pl.col("id") == "d"), "filter", "too_short")])
    picked = rejected.sort("id", descending=True)  # the caller picks the rows and their order
    pairs = removed_vs_kept(picked, final)
    assert pairs.columns == ["removed_id", "source", "reason", "kept_id", "removed_text", "kept_text"]
    assert pairs.select("removed_id", "kept_id", "reason").rows() == [
        ("e", "d", "exact_duplicate"),
        ("b", "c", "near_duplicate"),
        ("a", "c", "near_duplicate"),
    ]
    assert pairs["removed_text"].to_list() == [" ".join(v).title(), " ".join(w).upper(), " ".join(w)]
    assert pairs["kept_text"].to_list() == [None, " ".join(w) + " end", " ".join(w) + " end"]  # d: removed later
    # texts looked up by id in scans (the report reads rejected rows without their text)
    lazy = removed_vs_kept(picked.drop("text"), final.lazy(), rejected.lazy())
    assert lazy.equals(pairs)
    assert removed_vs_kept(picked, None)["kept_text"].null_count() == 3
    assert removed_vs_kept(picked.head(0), final).is_empty()


def test_report_shows_removed_duplicates_beside_kept_copies(tmp_path: Path) -> None:
    from pipeline.report import ReportConfig, write_report

    w, v = _text(60, seed=63), _text(60, seed=64)
    df = _docs([("a", " ".join(w)), ("c", " ".join(w) + " end"), ("d", " ".join(v)), ("e", " ".join(v).title())])
    res = _dedup([df])[0]
    (tmp_path / "documents").mkdir()
    (tmp_path / "rejected").mkdir()
    res.kept.filter(pl.col("id") != "d").write_parquet(tmp_path / "documents" / "part-0.parquet")
    later = to_rejected(res.kept.filter(pl.col("id") == "d"), "filter", "too_short")  # keeper d dropped later
    pl.concat([res.rejected, later]).write_parquet(tmp_path / "rejected" / "part-0.parquet")
    stages = [{"name": "dedup", "docs_in": 4, "docs_out": 2, "docs_rejected": 2, "stats": {"clusters": 2}}]
    manifest = {
        "code_version": "t",
        "recipe": {"name": "t", "stages": []},
        "stages": stages,
        "outputs": {"documents": 1},
    }
    md = (write_report(tmp_path, manifest, ReportConfig(snippet_chars=20)) / "report.md").read_text()
    assert f"| a | near_duplicate | c | {' '.join(w)[:20]} | {' '.join(w)[:20]} |" in md
    assert f"| e | exact_duplicate | d | {' '.join(v).title()[:20]} | (kept copy removed by a later stage) |" in md


def test_flow_tasks_write_index_and_dedup_a_later_run_against_it(tmp_path) -> None:
    from flows import tasks

    def shard(name: str, df: pl.DataFrame) -> dict:
        d = tmp_path / "in" / name
        d.mkdir(parents=True)
        df.write_parquet(d / "docs.parquet")
        return {"key": name, "dir": str(d)}

    def run(refs: list[dict], params: dict, cache: Path) -> tuple[dict, list[dict]]:
        sigs = [tasks.dedup_signatures.fn(i, params, r, str(cache)) for i, r in enumerate(refs)]
        clusters = tasks.dedup_clusters.fn(params, sigs, str(cache))
        out = [tasks.dedup_apply.fn(i, r, clusters, str(cache)) for i, r in enumerate(refs)]
        return clusters, out

    w1, w2 = _text(300, seed=71), _text(300, seed=72)
    refs1 = [
        shard("a", _docs([("a1", " ".join(w1)), ("a2", " ".join(w2))], source="web")),
        shard("b", _docs([("b1", " ".join(w1).upper())], source="book")),
    ]
    clusters1, out1 = run(refs1, {}, tmp_path / "cache1")
    stats = clusters1["stats"]
    assert stats["removed"] == 1 and stats["removed_by_source"]["web"] == {"removed": 1, "documents": 2, "share": 0.5}
    assert stats["lsh"]["bands"] == DedupConfig().band_params()[0]
    index = Path(clusters1["dir"]) / "index"
    assert pl.read_parquet(index / "index.parquet")["id"].sort().to_list() == ["a2", "b1"]
    # a later run, deduplicated against the first run's index without recomputing it
    refs2 = [shard("c", _docs([("c1", " ".join(_change(w2, [9], "x"))), ("c2", " ".join(_text(300, seed=73)))]))]
    clusters2, out2 = run(refs2, {"against": [str(index)]}, tmp_path / "cache2")
    rej = pl.read_parquet(Path(out2[0]["dir"]) / "rejected.parquet")
    assert rej.select("id", "duplicate_of").rows() == [("c1", "a2")]
    assert clusters2["stats"]["removed_against_earlier_run"] == 1
    titles = [t for t, _, _ in dedup_report_rows(clusters1["stats"])]
    assert titles == ["LSH parameters", "Cluster sizes", "Removed by source", "Largest clusters"]


def test_url_duplicates_for_web_only() -> None:
    df = _docs(
        [
            ("w1", " ".join(_text(100, seed=81))),
            ("w2", " ".join(_text(120, seed=82))),
            ("b1", " ".join(_text(100, seed=83))),
            ("b2", " ".join(_text(100, seed=84))),
        ],
        source=["web", "web", "book", "book"],
    ).with_columns(pl.Series("url", ["https://a.example/x", "https://a.example/x", "u", "u"]))
    assert _removed(df) == {"w1": ("w2", "url_duplicate")}  # w2 is longer; books never match by URL
    assert _removed(df, DedupConfig(url=False)) == {}


def _chain(seed0: int) -> tuple[list[str], list[str], list[str]]:
    """Texts A~B~C (one LSH band shared by A and B, another by B and C) where A and C share no band."""
    for seed in range(seed0, seed0 + 50):
        a = _text(300, seed=seed)
        b = _change(a, [30, 60], "b")
        c = _change(b, [230, 260, 290], "c")
        sigs = signatures(_docs([("A", " ".join(a)), ("B", " ".join(b)), ("C", " ".join(c))]))
        if _share_band(sigs, "A", "B") and _share_band(sigs, "B", "C") and not _share_band(sigs, "A", "C"):
            return a, b, c
    pytest.fail("no chain with A !~ C found")


def _shared_bands(sigs: pl.DataFrame, a: str, b: str) -> list[int]:
    ba = sigs.filter(pl.col("id") == a)["bands"][0].to_list()
    bb = sigs.filter(pl.col("id") == b)["bands"][0].to_list()
    return [x for x, y in zip(ba, bb, strict=True) if x == y]


def test_partitioned_spool_matches_single_pass(tmp_path) -> None:
    a, b, c = _chain(1000)
    w, u = _text(300, seed=91), _text(300, seed=92)
    rows = [
        ("A", " ".join(a)),
        ("B", " ".join(b)),
        ("C", " ".join(c)),
        ("w", " ".join(w)),
        ("w_exact", " ".join(w).upper()),  # exact copy of w
        ("w_near", " ".join(_change(w, [5], "n"))),
        ("u1", " ".join(u)),
        ("u2", " ".join(_text(200, seed=93))),  # same URL as u1
        ("solo", " ".join(_text(300, seed=94))),
        ("short", "too short"),
        ("short_copy", "TOO   short"),
    ]
    df = _docs(rows).with_columns(
        pl.when(pl.col("id").is_in(["u1", "u2"])).then(pl.lit("https://x.example/u")).alias("url"),
        pl.Series("quality_score", [0.1, 0.9, 0.5, None, 0.2, 0.3, None, None, None, None, None]),
    )
    sigs = signatures(df)
    ab, bc = _shared_bands(sigs, "A", "B"), _shared_bands(sigs, "B", "C")
    # a partition count that puts the A~B and B~C band keys in different partitions
    parts = next(p for p in range(2, 16) if {h % p for h in ab}.isdisjoint({h % p for h in bc}))
    single = find_duplicates(sigs, DedupConfig())
    assert dict(single.select("id", "duplicate_of").iter_rows()) == {
        "A": "B",  # transitive: A reaches B's cluster only through the chain, keeper by quality
        "C": "B",
        "w": "w_near",
        "w_exact": "w_near",
        "u2": "u1",
        "short": "short_copy",  # the longer text (extra spaces) wins
    }
    assert single.filter(pl.col("id") == "u2")["reason"].item() == "url_duplicate"
    assert single.filter(pl.col("id") == "short")["reason"].item() == "exact_duplicate"
    for p in (parts, 7):
        cfg = DedupConfig(partitions=p)
        assert find_duplicates(sigs, cfg, workdir=tmp_path).equals(single)
        for i in range(3):  # signature files, read one at a time
            sigs[i::3].write_parquet(tmp_path / f"s{i}.parquet")
        files = [tmp_path / f"s{i}.parquet" for i in range(3)]
        assert find_duplicates(files, cfg, workdir=tmp_path).equals(single)
    verify = DedupConfig(verify=True)
    sigs_v = signatures(df, verify)
    checked = find_duplicates(sigs_v, verify)
    assert checked.equals(find_duplicates(sigs_v, verify.model_copy(update={"partitions": parts}), workdir=tmp_path))
    assert list(tmp_path.glob("refinery-dedup-*")) == []  # spool folders removed


def test_partitioned_spool_with_earlier_run_index(tmp_path) -> None:
    a, b, c = _chain(1100)
    run1 = _docs([("r1_a", " ".join(a)), ("r1_other", " ".join(_text(300, seed=95)))])
    sigs1 = signatures(run1)
    write_index(sigs1, find_duplicates(sigs1), tmp_path / "idx", DedupConfig())
    run2 = _docs([("r2_b", " ".join(b)), ("r2_c", " ".join(c)), ("r2_new", " ".join(_text(300, seed=96)))])
    prior = load_index([tmp_path / "idx"], DedupConfig())
    single = find_duplicates(signatures(run2), DedupConfig(), prior=prior)
    assert dict(single.select("id", "duplicate_of").iter_rows()) == {"r2_b": "r1_a", "r2_c": "r1_a"}
    assert single["against_earlier_run"].all() and single["cluster_size"].to_list() == [3, 3]
    for p in (2, 3, 5):
        got = find_duplicates(signatures(run2), DedupConfig(partitions=p), prior=prior, workdir=tmp_path)
        assert got.equals(single)


def test_memory_budget_plan() -> None:
    assert _plan(10_000, 11, DedupConfig()) == (1, False)  # small runs: one pass, in memory
    parts, on_disk = _plan(10_000_000, 11, DedupConfig(memory_mb=64))
    assert on_disk and parts > 1 and 10_000_000 * 40 / parts <= 64 << 20
    assert _plan(10, 11, DedupConfig(partitions=3)) == (3, True)


def test_report_lists_cluster_sizes_in_numeric_order() -> None:
    import json

    from pipeline.dedup.summary import dedup_report_rows

    hist = {"2": 5, "3": 1, "4": 0, "5-9": 2, "10-99": 1, "100+": 1}
    stats = json.loads(json.dumps({"cluster_size_histogram": hist}, sort_keys=True))  # as a manifest holds it
    (table,) = [t for t in dedup_report_rows(stats) if t[0] == "Cluster sizes"]
    assert [row[0] for row in table[2]] == ["2", "3", "4", "5-9", "10-99", "100+"]
