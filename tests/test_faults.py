"""Fault injection: SIGKILL a run at many points (ingest, filters, inside dedup, tokenizer training,
inside tokenization, training), restart it each time, and the final run folder is byte-identical to an
uninterrupted run with no temporary file left behind."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import VENV_BIN, run_cli
from tests.test_e2e import TINY_RECIPE, build_corpus, folder_bytes

pytestmark = pytest.mark.long

# In run order. A point is reached when a path matching it appears that was not there when this attempt
# started; `done.json` marks a finished unit (one shard of a stage), `.tmp-*` a unit being written.
KILL_POINTS = [
    ("ingest", "cache/ingest/*/done.json"),
    ("filter", "cache/filter/*/done.json"),
    ("dedup signatures", "cache/dedup-signatures/*/done.json"),
    ("dedup clusters", "cache/dedup-clusters/*/done.json"),
    ("dedup apply", "cache/dedup/*/done.json"),
    ("tokenizer training", "cache/tokenizer/.tmp-*"),
    ("tokenization", "cache/tokenize/*/done.json"),
    ("model training", "cache/train/.tmp-*"),
    ("publishing", "documents/*.parquet"),
]
TEMPORARY = (".tmp-*", "*.tmp", ".*.old")


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [str(VENV_BIN / "refinery"), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the kill takes any child with it
    )


def _wait_any(out: Path, points: list[tuple[str, str]], proc: subprocess.Popen, timeout: float = 300) -> int | None:
    """Index in ``points`` of the first one reached (a new matching path), or None when the run ended."""
    before = [set(out.glob(pattern)) for _, pattern in points]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for i, (_, pattern) in enumerate(points):
            if set(out.glob(pattern)) - before[i]:
                return i
        if proc.poll() is not None:
            return None
        time.sleep(0.01)
    return None


def test_sigkill_at_many_points_then_rerun_is_byte_identical(prefect_server, tmp_path):
    build_corpus(tmp_path / "data")
    (tmp_path / "tiny.yaml").write_text(TINY_RECIPE)
    args = ["run", "--recipe", str(tmp_path / "tiny.yaml"), "--input", str(tmp_path / "data")]
    ref = tmp_path / "uninterrupted"
    run_cli([*args, "--out", str(ref)], env=prefect_server, check=True)

    out = tmp_path / "killed"
    rng = random.Random(10)
    killed_at: list[str] = []
    remaining = list(KILL_POINTS)
    while remaining:
        proc = _start([*args, "--out", str(out)], prefect_server)
        hit = _wait_any(out, remaining, proc)
        if hit is None:  # the run finished before any remaining point: later ones are all cached now
            proc.wait()
            break
        time.sleep(rng.uniform(0, 0.1))  # somewhere after the point, not exactly on it
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        killed_at.append(remaining[hit][0])
        # the manifest is the commit point: until the run completes it says so
        assert json.loads((out / "manifest.json").read_text())["status"] == "running"
        assert (out / ".refinery.lock").is_file()  # left by the kill; the next run recovers it
        remaining = remaining[hit + 1 :]
    assert len(killed_at) >= 5, killed_at
    assert any(k.startswith("dedup") for k in killed_at), killed_at
    assert {"tokenizer training", "tokenization"} & set(killed_at), killed_at
    print("killed at:", ", ".join(killed_at))

    run_cli([*args, "--out", str(out)], env=prefect_server, check=True)
    for sub in ("documents", "rejected"):
        assert folder_bytes(out / sub) == folder_bytes(ref / sub), sub
    shards = {k: v for k, v in folder_bytes(out / "shards").items() if k.endswith(".parquet")}
    assert shards and shards == {k: v for k, v in folder_bytes(ref / "shards").items() if k.endswith(".parquet")}
    assert folder_bytes(out / "tokenizer") == folder_bytes(ref / "tokenizer")
    assert (out / "model" / "model.safetensors").read_bytes() == (ref / "model" / "model.safetensors").read_bytes()
    left = [p for pat in TEMPORARY for p in out.rglob(pat)]
    assert not left, left


def test_sigterm_stops_a_run_within_10_s_and_it_resumes(prefect_server, tmp_path):
    """SIGTERM (a scheduler stopping a job, a container shutting down) ends the run promptly, releases its
    lock, leaves the folder marked as not complete, and the next run completes from the cache."""
    build_corpus(tmp_path / "data")
    (tmp_path / "tiny.yaml").write_text(TINY_RECIPE.replace("steps: 20", "steps: 5000"))
    args = ["run", "--recipe", str(tmp_path / "tiny.yaml"), "--input", str(tmp_path / "data")]
    out = tmp_path / "run"
    proc = _start([*args, "--out", str(out)], prefect_server)
    assert _wait_any(out, [("model training", "cache/train/.tmp-*")], proc) == 0, "training never started"
    time.sleep(2)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    assert time.monotonic() - sent < 10
    assert proc.returncode != 0
    assert json.loads((out / "manifest.json").read_text())["status"] == "running"
    assert not (out / ".refinery.lock").exists()
    fast = TINY_RECIPE  # the same curation, a short training: every curation unit comes from the cache
    (tmp_path / "tiny.yaml").write_text(fast)
    run_cli([*args, "--out", str(out)], env=prefect_server, check=True)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert next(s for s in manifest["stages"] if s["name"] == "tokenizer")["cached_shards"] == 1
