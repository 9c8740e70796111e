"""A recipe of `ingest` plus any one other stage runs on its own (prerequisites added with defaults)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from flows.stages import STAGES
from tests.conftest import run_cli
from tests.test_e2e import build_corpus

pytestmark = pytest.mark.slow

PARAMS = {
    "tokenizer": "{vocab_size: 512}",
    "train": "{steps: 4, batch_size: 2, seq_len: 16, eval_every: 4, eval_batches: 1}",
}


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("single") / "data"
    build_corpus(root)
    return root


@pytest.mark.parametrize("stage", [s for s in STAGES if s != "ingest"])
def test_ingest_plus_one_stage(stage, small_corpus, prefect_server, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: only-{stage}\nstages:\n  - ingest\n  - {stage}: {PARAMS.get(stage, '{}')}\n")
    out = tmp_path / "out"
    run_cli(
        ["run", "--recipe", str(recipe), "--input", str(small_corpus), "--out", str(out)],
        env=prefect_server,
        check=True,
    )
    manifest = json.loads((out / "manifest.json").read_text())
    names = [s["name"] for s in manifest["stages"]]
    assert names[0] == "ingest" and stage in names
    for s in manifest["stages"]:
        assert s["docs_in"] == s["docs_out"] + s["docs_rejected"]
    docs = pl.read_parquet(out / "documents" / "*.parquet")
    assert docs.height == manifest["outputs"]["documents"] > 0
    expected = {
        "tokenizer": "tokenizer/tokenizer.model",
        "shards": "shards/manifest.json",
        "train": "model/model.safetensors",
        "report": "report/index.html",
    }
    if stage in expected:
        assert (out / expected[stage]).is_file()
