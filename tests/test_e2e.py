"""The whole run through the CLI and Prefect: the run-folder contract, accounting, resume, determinism."""

from __future__ import annotations

import gzip
import json
import random
import signal
import subprocess
import time
from pathlib import Path

import polars as pl
import pytest

from pipeline.schema import REJECTED_SCHEMA
from tests.conftest import DEFAULT_STAGES, VENV_BIN, run_cli

pytestmark = pytest.mark.slow

WORDS = (
    "the of and to in a is that for it as was with be by on not he this are or his from at which but have an "
    "they you were her she there would their we him been has when who will more no if out so said what up its "
    "about into than them can only other new some could time these two may then do first any my now such like "
    "our over man me even most made after also did many before must through back years where much your way well "
    "down should because each just those people how too little state good very make world still own see men work "
    "long get here between both life being under never day same another know while last might us great old year"
).split()

TINY_RECIPE = """
name: tiny
seed: 0
stages:
  - ingest: {shard_mb: 0.05}
  - normalize: {}
  - langid: {keep: [en]}
  - filter: {}
  - dedup: {}
  - pii: {}
  - tokenizer: {vocab_size: 512}
  - shards: {}
  - train: {preset: nano, steps: 20, batch_size: 4, seq_len: 32, eval_every: 10, eval_batches: 2}
  - report: {}
"""


def prose(rng: random.Random, n: int) -> str:
    sentences = []
    while sum(len(s.split()) for s in sentences) < n:
        k = rng.randint(8, 18)
        sentences.append(" ".join(rng.choice(WORDS) for _ in range(k)).capitalize() + ".")
    return " ".join(sentences)


def build_corpus(root: Path) -> dict[str, int]:
    """A small corpus with every reader, planted duplicates and PII, and each bad-input case."""
    rng = random.Random(7)
    (root / "web").mkdir(parents=True)
    (root / "books").mkdir()
    (root / "code" / "pkg").mkdir(parents=True)
    (root / "bad").mkdir()
    records = [{"text": prose(rng, rng.randint(120, 400)), "url": f"https://example.org/p/{i}"} for i in range(80)]
    records[3]["text"] += " Write to ann.smith@example.com or call (415) 555-0132 about it."
    records[5] = dict(records[4])  # exact duplicate
    with gzip.open(root / "web" / "posts.jsonl.gz", "wt", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r) + "\n")
    for i in range(6):
        body = "".join(f"<p>{prose(rng, 60)}</p>" for _ in range(4))
        page = (
            f"<html><head><title>Page {i}</title></head><body><nav>Home | About</nav>"
            f"<article>{body}</article></body></html>"
        )
        (root / "web" / f"page{i}.html").write_text(page, encoding="utf-8")
    book = "\n\n".join(prose(rng, 150) for _ in range(30))
    (root / "books" / "tale.txt").write_bytes(
        (
            "The Project Gutenberg EBook of A Tale\r\n\r\n*** START OF THE PROJECT GUTENBERG EBOOK A TALE ***\r\n"
            + book.replace("\n", "\r\n")
            + "\r\n*** END OF THE PROJECT GUTENBERG EBOOK A TALE ***\r\nLicence text follows.\r\n"
        ).encode()
    )
    for i in range(5):
        lines = [f"def function_{i}_{j}(value):\n    return value * {j} + {i}\n\n" for j in range(12)]
        (root / "code" / "pkg" / f"mod{i}.py").write_text("".join(lines))
    # Bad inputs: each must become a rejected row, never a crash.
    good = gzip.compress("".join(json.dumps(r) + "\n" for r in records[:40]).encode())
    (root / "bad" / "truncated.jsonl.gz").write_bytes(good[: len(good) // 2])
    (root / "bad" / "lines.jsonl").write_bytes(
        b'{"text": "fine line of text here"}\nnot json at all\n{"text": "bad \xff\xfe utf8"}\n{"text": 5}\n'
    )
    (root / "bad" / "binary.txt").write_bytes(bytes(range(256)) * 20)
    (root / "bad" / "empty.txt").write_bytes(b"")
    (root / "bad" / "broken.warc").write_bytes(b"WARC/1.0\r\nWARC-Type: response\r\nContent-Length: abc\r\n\r\nxx")
    return {"records": len(records)}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("corpus")
    build_corpus(root / "data")
    (root / "tiny.yaml").write_text(TINY_RECIPE)
    return root / "data", root / "tiny.yaml"


@pytest.fixture(scope="module")
def first_run(corpus, prefect_server, tmp_path_factory) -> Path:
    data, recipe = corpus
    out = tmp_path_factory.mktemp("runs") / "first"
    proc = run_cli(
        ["run", "--recipe", str(recipe), "--input", str(data), "--out", str(out)], env=prefect_server, check=True
    )
    assert "Run summary" in proc.stdout
    return out


def read_dir(folder: Path) -> pl.DataFrame:
    return pl.concat([pl.read_parquet(p) for p in sorted(folder.glob("*.parquet"))], how="vertical_relaxed")


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_run_folder_contract(first_run):
    docs = read_dir(first_run / "documents")
    assert {"id", "text", "source", "url", "path", "lang"} <= set(docs.columns)
    assert docs["id"].is_unique().all()
    assert set(docs["source"]) >= {"book", "code", "web"}
    rejected = read_dir(first_run / "rejected")
    assert list(REJECTED_SCHEMA) == rejected.columns
    # lang on every row, kept and rejected alike, including rows rejected before language ID
    assert docs["lang"].null_count() == 0 and rejected["lang"].null_count() == 0
    assert rejected["lang_score"].null_count() == 0
    for sub in (
        "tokenizer/tokenizer.model",
        "shards/manifest.json",
        "model/model.safetensors",
        "model/metrics.json",
        "report/report.md",
        "report/index.html",
        "report/loss_curve.png",
    ):
        assert (first_run / sub).is_file(), sub
    shards = read_dir(first_run / "shards")
    assert {"id", "source", "tokens", "n_tokens"} <= set(shards.columns)
    assert set(shards["id"]) == set(docs["id"])


def test_accounting_holds_for_every_stage(first_run):
    manifest = json.loads((first_run / "manifest.json").read_text())
    names = [s["name"] for s in manifest["stages"]]
    assert names == DEFAULT_STAGES
    for stage in manifest["stages"]:
        assert stage["docs_in"] == stage["docs_out"] + stage["docs_rejected"], stage
    doc_stages = manifest["stages"][:6]
    for before, after in zip(doc_stages, doc_stages[1:], strict=False):
        assert after["docs_in"] == before["docs_out"]
    docs = read_dir(first_run / "documents")
    rejected = read_dir(first_run / "rejected")
    assert docs.height + rejected.height == manifest["stages"][0]["docs_in"]
    assert not set(docs["id"]) & set(rejected["id"])
    per_stage = dict(rejected.group_by("stage").len().iter_rows())
    for stage in doc_stages:
        assert per_stage.get(stage["name"], 0) == stage["docs_rejected"]
    assert manifest["recipe"]["stages"][3]["params"]  # parameters recorded as run, defaults included
    assert manifest["inputs"][0]["files"] > 0 and manifest["code_version"]


def test_bad_inputs_become_rejected_rows(first_run):
    rejected = read_dir(first_run / "rejected").filter(pl.col("stage") == "ingest")
    by_file = {p.split("#")[0]: r for p, r in zip(rejected["path"], rejected["reason"], strict=True)}
    for name in ("truncated.jsonl.gz", "lines.jsonl", "binary.txt", "empty.txt", "broken.warc"):
        assert any(p.endswith(name) for p in by_file), f"{name} not rejected: {by_file}"
    lines = rejected.filter(pl.col("path").str.contains("lines.jsonl"))
    assert lines.height == 3  # not JSON, invalid UTF-8, non-string text; the good line is kept
    docs = read_dir(first_run / "documents")
    assert docs.filter(pl.col("path").str.contains("truncated.jsonl.gz")).height > 0  # records before the break


def test_duplicates_and_pii(first_run):
    rejected = read_dir(first_run / "rejected")
    dups = rejected.filter(pl.col("stage") == "dedup")
    assert dups.height >= 1 and dups["duplicate_of"].is_not_null().all()
    docs = read_dir(first_run / "documents")
    assert set(dups["duplicate_of"]) <= set(docs["id"])
    text = "\n".join(docs["text"])
    assert "ann.smith@example.com" not in text and "<EMAIL>" in text
    assert "555-0132" not in text


def test_rerun_is_cached_and_identical(first_run, corpus, prefect_server):
    data, recipe = corpus
    before = folder_bytes(first_run / "documents")
    run_cli(
        ["run", "--recipe", str(recipe), "--input", str(data), "--out", str(first_run)], env=prefect_server, check=True
    )
    manifest = json.loads((first_run / "manifest.json").read_text())
    names = [s["name"] for s in manifest["stages"]]
    # A finished run folder holds no raw personal data, so its own cache kept only the units made from
    # `pii` on: the stages before it ran again, every later one came from the cache.
    assert manifest["cache_pruned"] > 0
    for stage in manifest["stages"][names.index("pii") : 9]:
        assert stage["cached_shards"] == stage["shards"], stage
    assert manifest["stages"][0]["cached_shards"] == 0
    assert folder_bytes(first_run / "documents") == before


def _wait_for(path: Path, pattern: str, proc: subprocess.Popen, timeout: float = 300) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(path.glob(pattern)):
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("kill_after", ["cache/filter/*/done.json", "cache/tokenizer/*/done.json"])
def test_resume_after_sigkill_is_byte_identical(first_run, corpus, prefect_server, tmp_path, kill_after):
    data, recipe = corpus
    out = tmp_path / "killed"
    args = [str(VENV_BIN / "refinery"), "run", "--recipe", str(recipe), "--input", str(data), "--out", str(out)]
    proc = subprocess.Popen(args, env=prefect_server, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    reached = _wait_for(out, kill_after, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert reached, "the run ended before the kill point"
    assert json.loads((out / "manifest.json").read_text())["status"] == "running"
    run_cli(["run", "--recipe", str(recipe), "--input", str(data), "--out", str(out)], env=prefect_server, check=True)
    assert folder_bytes(out / "documents") == folder_bytes(first_run / "documents")
    assert folder_bytes(out / "rejected") == folder_bytes(first_run / "rejected")
    shard_files = {k: v for k, v in folder_bytes(out / "shards").items() if k.endswith(".parquet")}
    assert shard_files == {k: v for k, v in folder_bytes(first_run / "shards").items() if k.endswith(".parquet")}
    assert not list(out.rglob(".tmp-*")) and not list(out.rglob("*.tmp"))


def test_inspect_views(first_run):
    summary = run_cli(["inspect", str(first_run)], env=None, check=True)
    assert "exact_duplicate" in summary.stdout and "ingest" in summary.stdout
    rejected = read_dir(first_run / "rejected")
    reason = rejected.filter(pl.col("stage") == "ingest")["reason"][0]
    shown = run_cli(["inspect", str(first_run), "--reason", reason, "-n", "1"], env=None, check=True)
    assert "matching documents" in shown.stdout
    dedup = run_cli(["inspect", str(first_run), "--stage", "dedup"], env=None, check=True)
    assert "cluster size" in dedup.stdout and "(removed)" in dedup.stdout
    pii = run_cli(["inspect", str(first_run), "--stage", "pii", "-n", "5"], env=None, check=True)
    assert "ann.smith@example.com" not in pii.stdout and "<EMAIL>" in pii.stdout
    missing = run_cli(["inspect", str(first_run), "--reason", "no_such_rule"], env=None)
    assert missing.returncode == 2 and "no rejected documents" in missing.stderr
