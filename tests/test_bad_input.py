"""A generated corpus of broken inputs (tests/bad_inputs.py) through the whole CLI: the run finishes, every
input record is in documents/ or rejected/ with a reason, and the manifest's accounting holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from pipeline.ids import doc_id
from tests.bad_inputs import make_bad_corpus
from tests.conftest import run_cli

DOC_RECIPE = """
name: bad-input
seed: 0
stages:
  - ingest: {shard_mb: 0.5}
  - normalize: {}
  - langid: {keep: [en]}
  - filter: {}
  - dedup: {}
  - pii: {}
"""
FULL_RECIPE = DOC_RECIPE + "  - tokenizer: {vocab_size: 512}\n  - shards: {}\n"


def _read(folder: Path) -> pl.DataFrame:
    parts = [pl.read_parquet(p) for p in sorted(folder.glob("*.parquet"))]
    return pl.concat(parts, how="diagonal_relaxed") if parts else pl.DataFrame()


def check_run(out: Path, files: dict[str, dict[str, Any]]) -> tuple[pl.DataFrame, pl.DataFrame]:
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    stages = manifest["stages"]
    for s in stages:
        assert s["docs_in"] == s["docs_out"] + s["docs_rejected"], s
    doc_stages = [s for s in stages if s["name"] not in ("tokenizer", "shards", "train", "report")]
    for before, after in zip(doc_stages, doc_stages[1:], strict=False):
        assert after["docs_in"] == before["docs_out"], (before["name"], after["name"])

    docs, rejected = _read(out / "documents"), _read(out / "rejected")
    # Every row accounted once: documents and rejected rows add up to what ingest read, ids never repeat.
    assert docs.height + rejected.height == stages[0]["docs_in"]
    assert docs.height == manifest["outputs"]["documents"] and rejected.height == manifest["outputs"]["rejected"]
    ids = pl.concat([docs["id"], rejected["id"]])
    assert ids.is_unique().all()
    # Every reject says where and why.
    assert rejected["reason"].is_not_null().all() and (rejected["reason"].str.len_chars() > 0).all()
    assert rejected["stage"].is_not_null().all()
    per_stage = dict(rejected.group_by("stage").len().iter_rows())
    for s in doc_stages:
        assert per_stage.get(s["name"], 0) == s["docs_rejected"], s["name"]

    rows = pl.concat(
        [docs.select("id", "path", pl.lit(None, pl.String).alias("reason")), rejected.select("id", "path", "reason")]
    ).with_columns(pl.col("path").str.split("#").list.first().alias("file"))
    by_file = {f: g for (f,), g in rows.group_by("file")}
    for name, info in files.items():
        display = f"bad/{name}"
        got = by_file.get(display)
        assert got is not None and got.height >= 1, f"{name}: no row at all"
        if info["intact"] and info["records"] > 1:
            # Multi-record files that are readable to the end: every record by its own id.
            first = 0 if name.endswith(".parquet") else 1
            expected = {doc_id(display, i) for i in range(first, first + info["records"])}
            missing = expected - set(got["id"])
            assert not missing, f"{name}: {len(missing)} of {info['records']} records unaccounted"
        elif not info["intact"]:
            # Cut or corrupted: the records before the break, and a reject where it broke.
            broken = got.filter(pl.col("reason").str.contains("truncated|unreadable|not a readable|content-type"))
            assert broken.height >= 1, f"{name}: no reject at the break: {got['reason'].to_list()}"
            assert got.height <= info["records"] + 2, name
    return docs, rejected


@pytest.mark.slow
def test_bad_input_corpus_runs_and_accounts_for_every_record(prefect_server, tmp_path):
    files = make_bad_corpus(tmp_path / "bad")
    (tmp_path / "recipe.yaml").write_text(DOC_RECIPE)
    out = tmp_path / "run"
    proc = run_cli(
        ["run", "--recipe", str(tmp_path / "recipe.yaml"), "--input", str(tmp_path / "bad"), "--out", str(out)],
        env=prefect_server,
        check=True,
    )
    assert "warning(s)" in proc.stderr  # the run says it met bad input, and still exits 0
    docs, rejected = check_run(out, files)
    reasons = dict(zip(rejected["path"], rejected["reason"], strict=True))
    assert reasons["bad/wrong_types.jsonl#1"] == "non-string text: int"
    assert reasons["bad/no_text.parquet#0"] == "parquet: no text column"
    assert reasons["bad/invalid_utf8.jsonl#2"] == "invalid utf-8"
    assert reasons["bad/nul_book.txt"] == "binary content"
    # Records before a break are read (then kept, or dropped by a later stage as duplicates of each other).
    read = pl.concat([docs.select("path"), rejected.filter(pl.col("stage") != "ingest").select("path")])
    assert read.filter(pl.col("path").str.starts_with("bad/truncated.jsonl.gz#")).height > 50


@pytest.mark.long
def test_bad_input_corpus_with_50mb_single_line_files(prefect_server, tmp_path):
    """The same corpus plus a 50 MB single-line JSONL record and a 50 MB single-line book, through every
    stage up to token shards."""
    files = make_bad_corpus(tmp_path / "bad", big_mb=50)
    (tmp_path / "recipe.yaml").write_text(FULL_RECIPE)
    out = tmp_path / "run"
    run_cli(
        ["run", "--recipe", str(tmp_path / "recipe.yaml"), "--input", str(tmp_path / "bad"), "--out", str(out)],
        env=prefect_server,
        check=True,
        timeout=1200,
    )
    docs, rejected = check_run(out, files)
    for name in ("one_line_50mb.jsonl", "one_line_50mb.txt"):
        got = pl.concat([docs.select("path"), rejected.select("path")]).filter(pl.col("path").str.contains(name))
        assert got.height >= 1, name
    shards = json.loads((out / "shards" / "manifest.json").read_text())
    assert shards["splits"]["train"]["docs"] + shards["splits"]["val"]["docs"] == docs.height
