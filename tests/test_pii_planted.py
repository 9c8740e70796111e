"""Planted-set checks: a CLI run over a planted corpus leaves no planted value in documents/, and clean
real books and code give no false positives."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl
import pytest

from pipeline.pii.config import PiiConfig
from pipeline.pii.find import find_pii
from tests.conftest import REPO, run_cli
from tests.planted_pii import ENTITIES, planted_corpus

RECIPE = """
name: pii-planted
stages: [ingest, pii]
"""


def _base_texts(n: int) -> list[str]:
    """Real prose from the repository's README, cut into paragraphs groups (always present, unlike shared data)."""
    paras = [p for p in (REPO / "README.md").read_text(encoding="utf-8").split("\n\n") if p.strip()]
    return ["\n\n".join(paras[i % len(paras) : i % len(paras) + 4]) for i in range(n)]


@pytest.mark.slow
def test_no_planted_value_survives_a_run(prefect_server, tmp_path: Path) -> None:
    corpus = planted_corpus(_base_texts(3 * len(ENTITIES)), seed=7, per_doc=2)
    with (tmp_path / "planted.jsonl").open("w", encoding="utf-8") as f:
        for i, (text, _) in enumerate(corpus):
            f.write(json.dumps({"id": f"p{i}", "text": text, "source": "code" if i % 3 == 0 else "web"}) + "\n")
    (tmp_path / "r.yaml").write_text(RECIPE)
    out = tmp_path / "out"
    run_cli(
        ["run", "--recipe", str(tmp_path / "r.yaml"), "--input", str(tmp_path / "planted.jsonl"), "--out", str(out)],
        env=prefect_server,
        check=True,
    )
    docs = pl.read_parquet(out / "documents" / "*.parquet")
    assert docs.height == len(corpus)
    text = "\n".join(docs["text"])
    plants = [p for _, ps in corpus for p in ps]
    assert {p.entity for p in plants} == set(ENTITIES)
    survivors = [(p.entity, p.value) for p in plants if p.value in text]
    assert not survivors
    manifest = json.loads((out / "manifest.json").read_text())
    stage = next(s for s in manifest["stages"] if s["name"] == "pii")
    counts = stage["stats"]["counts"]
    for entity in ENTITIES:
        assert counts[entity] >= sum(p.entity == entity for p in plants), entity
    assert set(stage["stats"]["by_source"]) == {"code", "web"}


# Genuine PII in the clean data (found correctly): validated e-mail addresses, and contact details (Project
# Gutenberg's in book licences, a BBS's, a lawyer's, a publisher's), plus an IP given as an example address.
_GENUINE_VALUES = {
    "(801) 596-1887", "(212-254-5093", "(713) 977-9505", "(713) 977-1719", "209.81.8.242",
    "+1-800-951-0200", "+1-617-951-0600",  # JSON-LD "telephone" of a publisher's customer service
}  # fmt: skip


def test_clean_books_and_code_have_no_false_positives(shared_data: Path) -> None:
    cfg = PiiConfig()
    books = [
        gzip.open(p, "rt", encoding="utf-8", errors="replace").read()
        for p in sorted((shared_data / "books").glob("*.txt.gz"))
    ]
    code: list[str] = []
    with gzip.open(shared_data / "code" / "code_files.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            code.append(json.loads(line)["content"])
            if sum(map(len, code)) > 3_000_000:
                break
    false_positives = []
    for source, texts in (("book", books), ("code", code)):
        for text, found in zip(texts, find_pii(texts, [source] * len(texts), cfg), strict=True):
            for r in found:
                value = text[r.start : r.end]
                if r.entity_type != "EMAIL_ADDRESS" and value not in _GENUINE_VALUES:
                    false_positives.append((source, r.entity_type, value))
    assert not false_positives


DROP_RECIPE = """
name: pii-drop
stages:
  - ingest: {}
  - pii: {policies: {PRIVATE_KEY: drop}, drop_above: 0}
"""


@pytest.mark.slow
def test_drop_policy_in_a_run(prefect_server, tmp_path: Path) -> None:
    corpus = planted_corpus(_base_texts(2 * len(ENTITIES)), seed=3, per_doc=1)
    with (tmp_path / "planted.jsonl").open("w", encoding="utf-8") as f:
        for i, (text, _) in enumerate(corpus):
            f.write(json.dumps({"id": f"p{i}", "text": text, "source": "web"}) + "\n")
    (tmp_path / "r.yaml").write_text(DROP_RECIPE)
    out = tmp_path / "out"
    run_cli(
        ["run", "--recipe", str(tmp_path / "r.yaml"), "--input", str(tmp_path / "planted.jsonl"), "--out", str(out)],
        env=prefect_server,
        check=True,
    )
    with_key = sum(p.entity == "PRIVATE_KEY" for _, ps in corpus for p in ps)
    rejected = pl.read_parquet(out / "rejected" / "*.parquet").filter(pl.col("stage") == "pii")
    assert rejected.height == with_key > 0
    assert set(rejected["reason"]) == {"pii_above_0"}
    assert all(json.loads(d)["PRIVATE_KEY"] == 1 for d in rejected["detail"])
    assert not rejected["text"].str.contains("PRIVATE KEY-----\n[A-Za-z0-9+/]{64}").any()  # redacted there too
    docs = pl.read_parquet(out / "documents" / "*.parquet")
    assert docs.height == len(corpus) - with_key
    manifest = json.loads((out / "manifest.json").read_text())
    stage = next(s for s in manifest["stages"] if s["name"] == "pii")
    assert stage["docs_rejected"] == with_key and stage["stats"]["docs_dropped"] == with_key
