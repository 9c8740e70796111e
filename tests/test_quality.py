"""Quality classifier stage, its trainer, the perplexity stage and `refinery preview`'s table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from flows.commands.quality import preview_table
from pipeline.quality.classifier import (
    DEFAULT_MODEL,
    QualityConfig,
    TrainQualityConfig,
    classify,
    pareto_keep,
    train_quality,
)
from pipeline.quality.perplexity import PerplexityConfig, filter_perplexity, train_lm
from tests.test_filters import _docs

PROSE = (
    "The history of the county is described in the records of the parish, which were kept by the "
    "clergy from the sixteenth century onwards and survive in the archive of the diocese. "
) * 5
SPAM = "click here buy now cheap deals login sign up free shipping menu home contact cart " * 8


def test_builtin_model_ships_small_with_fingerprint() -> None:
    assert DEFAULT_MODEL.stat().st_size < 3_000_000
    meta = json.loads(Path(str(DEFAULT_MODEL) + ".json").read_text())
    assert len(meta["training_data_sha256"]) == 64


def test_classify_threshold_scores_every_row_and_rejects_with_detail() -> None:
    res = classify(_docs([PROSE, SPAM]), QualityConfig(threshold=0.5))
    assert res.kept.height + res.rejected.height == 2
    scores = {**dict(zip(res.kept["id"], res.kept["quality_score"], strict=True))}
    for row in res.rejected.iter_rows(named=True):
        scores[row["id"]] = json.loads(row["detail"])["quality_score"]
        assert row["reason"] == "quality_score<0.5" and row["stage"] == "quality"
    assert scores["d0"] > scores["d1"]
    # at the threshold a row is kept, just above it rejected; unjudged sources are always kept
    s1 = scores["d1"]
    assert classify(_docs([SPAM]), QualityConfig(threshold=round(s1, 6) - 1e-6)).rejected.height == 0
    assert classify(_docs([SPAM]), QualityConfig(threshold=min(s1 + 1e-3, 1.0))).rejected.height == 1
    assert classify(_docs([SPAM], "book"), QualityConfig(threshold=1.0)).rejected.height == 0


def test_pareto_rule_is_deterministic_and_monotone() -> None:
    ids = pl.Series([f"doc{i}" for i in range(4000)])
    hi = pareto_keep(ids, np.full(4000, 0.95), 9.0, 0)
    lo = pareto_keep(ids, np.full(4000, 0.2), 9.0, 0)
    assert (hi >= lo).all() and hi.mean() > 0.5 > lo.mean()
    # P(pareto(9) > 1 - s) = (2 - s)^-9: s = 0.95 -> 0.64
    assert hi.mean() == pytest.approx(1.05**-9, abs=0.03)
    assert (pareto_keep(ids, np.full(4000, 0.5), 9.0, 0) == pareto_keep(ids, np.full(4000, 0.5), 9.0, 0)).all()
    res = classify(_docs([PROSE, SPAM] * 20), QualityConfig(mode="pareto"))
    assert res.kept.height + res.rejected.height == 40


def test_train_quality_writes_model_and_fingerprint(tmp_path: Path) -> None:
    pos, neg = tmp_path / "pos.jsonl", tmp_path / "neg.jsonl"
    pos.write_text("".join(json.dumps({"text": PROSE + str(i)}) + "\n" for i in range(30)))
    neg.write_text(
        "".join(json.dumps({"html": f"<html><body><a>{SPAM}</a>{i}</body></html>"}) + "\n" for i in range(30))
    )
    out = tmp_path / "q.bin"
    meta = train_quality([pos], [neg], out, TrainQualityConfig(quantize=False, epoch=5))
    assert out.is_file() and meta["examples_per_class"] == 30
    again = train_quality([pos], [neg], tmp_path / "q2.bin", TrainQualityConfig(quantize=False, epoch=5))
    assert again["training_data_sha256"] == meta["training_data_sha256"]
    res = classify(_docs([PROSE, SPAM]), QualityConfig(model=str(out)))
    assert res.kept["id"].to_list() == ["d0"]


def test_perplexity_buckets_and_keep(tmp_path: Path) -> None:
    lm = tmp_path / "lm.npz"
    ref = [PROSE] * 20
    meta = train_lm(ref, lm, calibrate=[PROSE, PROSE[:200], SPAM, SPAM[:100] + PROSE[:100]])
    assert meta["cutoffs"][0] <= meta["cutoffs"][1]
    res = filter_perplexity(_docs([PROSE, SPAM]), PerplexityConfig(model=str(lm), keep_buckets=["head", "middle"]))
    assert res.kept["id"].to_list() == ["d0"] and res.kept["ppl_bucket"].to_list() == ["head"]
    assert res.rejected["reason"].to_list() == ["ppl_bucket_tail"]
    assert json.loads(res.rejected["detail"][0])["ppl_bucket"] == "tail"
    cut = PerplexityConfig(model=str(lm), cutoffs={"web": (1e9, 2e9)})
    assert filter_perplexity(_docs([SPAM]), cut).kept["ppl_bucket"].to_list() == ["head"]
    builtin = filter_perplexity(_docs([PROSE, SPAM]))  # the shipped LM
    assert builtin.kept.height == 2 and builtin.kept["perplexity"].to_list()[0] < builtin.kept["perplexity"][1]


def test_preview_table_counts_docs_and_words() -> None:
    docs = pl.DataFrame({"source": ["web", "web", "book"], "text": ["a b", "c d e", "f"], "s": [1.0, 3.0, None]})
    t = preview_table(docs, "s", ">", [2.0, 0.5])
    web = t.filter(pl.col("source") == "web").sort("threshold")
    assert web["docs_removed"].to_list() == [2, 1] and web["words_removed"].to_list() == [5, 3]
    assert t.filter(pl.col("source") == "book")["docs_removed"].to_list() == [0, 0]


def test_preview_cli_on_a_small_run(tmp_path: Path) -> None:
    from pipeline.filters.stage import FilterConfig, apply_filters
    from tests.conftest import run_cli

    (tmp_path / "documents").mkdir()
    docs = _docs([PROSE, PROSE[:300], SPAM]).with_columns(pl.Series("source", ["web", "book", "web"]))
    kept = apply_filters(docs, FilterConfig(families=["gopher_quality"], disabled_rules=["gopher_min_words"])).kept
    assert kept.height >= 2
    kept.write_parquet(tmp_path / "documents" / "part-0.parquet")
    out = run_cli(["preview", str(tmp_path), "--stat", "gopher_mean_word_length", "--at", "4,5"], env=None, check=True)
    assert "web" in out.stdout and "docs removed" in out.stdout
    # a statistic the run did not compute is computed on the fly
    out = run_cli(["preview", str(tmp_path), "--stat", "fineweb_short_line_frac"], env=None, check=True)
    assert "fineweb_short_line_frac" in out.stdout
    bad = run_cli(["preview", str(tmp_path), "--stat", "nope"], env=None)
    assert bad.returncode == 2
