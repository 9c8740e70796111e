"""The bundled sample corpus exercises every curation path the demo promises."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from flows.cli import SAMPLE_DATA, SAMPLE_FOLDERS
from tests.conftest import run_cli

pytestmark = pytest.mark.slow

CURATE_ONLY = """
name: sample-curation
stages: [ingest, normalize, langid, filter, dedup, pii, report]
"""


@pytest.fixture(scope="module")
def sample_run(prefect_server, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sample")
    (root / "r.yaml").write_text(CURATE_ONLY)
    args = ["run", "--recipe", str(root / "r.yaml"), "--out", str(root / "out")]
    for folder in SAMPLE_FOLDERS:
        args += ["--input", str(SAMPLE_DATA / folder)]
    run_cli(args, env=prefect_server, check=True)
    return root / "out"


def test_no_planted_pii_survives(sample_run):
    docs = pl.read_parquet(sample_run / "documents" / "*.parquet")
    text = "\n".join(docs["text"])
    planted = json.loads((SAMPLE_DATA / "PLANTED_PII.json").read_text())["values"]
    assert planted
    survivors = [p["value"] for p in planted if p["value"] in text]
    assert not survivors
    for token in ("<EMAIL>", "<PHONE>", "<IP>", "<CREDIT_CARD>"):
        assert token in text


def test_every_path_is_exercised(sample_run):
    docs = pl.read_parquet(sample_run / "documents" / "*.parquet")
    rejected = pl.read_parquet(sample_run / "rejected" / "*.parquet")
    assert set(docs["source"]) >= {"web", "book", "code", "other"}
    reasons = rejected.group_by("stage", "reason").len()
    by_stage = {s: set(r) for s, r in reasons.group_by("stage").agg("reason").iter_rows()}
    assert any(r.startswith("lang_not_kept:") for r in by_stage["langid"])  # non-English pages
    assert any(r.startswith("gopher_") or r.startswith("rep_") for r in by_stage["filter"])  # spam pages
    assert "code_minified" in by_stage["filter"] and "code_lockfile" in by_stage["filter"]
    assert {"exact_duplicate", "near_duplicate"} <= by_stage["dedup"]
    assert any("content-type" in r for r in by_stage["ingest"])  # non-HTML responses
    books = docs.filter(pl.col("source") == "book")
    assert books.height >= 3
    assert not books["text"].str.contains("(?i)project gutenberg").any()
    assert books["text"].str.contains("é").any()  # the Latin-1 book decoded
