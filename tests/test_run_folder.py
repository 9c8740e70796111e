"""The run folder's ownership rules (flows/run_folder.py): what a run may write, replace, remove and lock."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.run_folder import (
    CURATE_OUTPUTS,
    LOCK,
    MARKER,
    Lock,
    RunFolder,
    RunFolderError,
    check_cache,
    check_places,
    check_run_folder,
    lock_cache,
    prune_cache,
)
from pipeline.atomic import TMP_PREFIX, atomic_write_bytes


def checksums(root: Path) -> dict[str, str]:
    """Every file below ``root``, hidden ones included, with its content hash."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def user_folder(root: Path) -> Path:
    """A folder of the user's own files, named like a run's outputs and temporaries."""
    for rel in ("documents/mine.parquet", "rejected/notes.txt", "tokenizer/tokenizer.model", "model/__init__.py",
                ".env", ".x.tmp", ".y.old", "documents/.z.tmp", "cache/keep.bin", "dedup_index/.a.old"):  # fmt: skip
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(f"user data {rel}")
    return root


def run_once(root: Path, files: dict[str, bytes], dirs: dict[str, dict[str, bytes]] | None = None) -> RunFolder:
    """A complete run publishing ``files`` (rel -> bytes) and ``dirs`` (folder -> name -> bytes)."""
    folder = RunFolder(root, "curate", CURATE_OUTPUTS)
    folder.claim()
    src = root.parent / f"src-{os.getpid()}"
    src.mkdir(exist_ok=True)
    for rel, data in files.items():
        folder.write_bytes(rel, data)
    for d, named in (dirs or {}).items():
        paths = {}
        for name, data in named.items():
            (src / name).write_bytes(data)
            paths[name] = src / name
        folder.publish_dir(d, paths)
    folder.finish({"status": "complete"})
    folder.release()
    return folder


def test_new_folder_is_claimed_and_records_what_it_wrote(tmp_path):
    out = tmp_path / "run"
    run_once(out, {"report/report.md": b"r"}, {"documents": {"part-0.parquet": b"d"}})
    marker = json.loads((out / MARKER).read_text())
    assert marker["kind"] == "curate"
    assert set(marker["files"]) == {"report/report.md", "documents/part-0.parquet", "manifest.json"}
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"
    assert not (out / LOCK).exists()


def test_foreign_folder_is_refused_and_untouched(tmp_path):
    out = user_folder(tmp_path / "mine")
    before = checksums(out)
    with pytest.raises(RunFolderError, match="not empty and was not written by Refinery"):
        RunFolder(out, "curate", CURATE_OUTPUTS).claim()
    assert checksums(out) == before
    assert not (out / MARKER).exists() and not (out / LOCK).exists()


def test_empty_existing_folder_is_used(tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    run_once(out, {"manifest.json": b"{}"})
    assert (out / MARKER).is_file()


def test_a_file_as_out_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(RunFolderError, match="is a file"):
        RunFolder(tmp_path / "f", "curate", CURATE_OUTPUTS).inspect()


def test_owned_folder_with_user_files_in_an_output_folder_is_refused(tmp_path):
    out = tmp_path / "run"
    run_once(out, {}, {"documents": {"part-0.parquet": b"d"}})
    (out / "documents" / "mine.parquet").write_text("user")
    before = checksums(out)
    with pytest.raises(RunFolderError, match="documents/mine.parquet"):
        RunFolder(out, "curate", CURATE_OUTPUTS).claim()
    assert checksums(out) == before


def test_rerun_replaces_only_its_own_files_and_removes_outputs_no_longer_made(tmp_path):
    out = tmp_path / "run"
    run_once(out, {"report/report.md": b"1"}, {"documents": {"a.parquet": b"1", "b.parquet": b"1"},
                                               "model": {"model.safetensors": b"1"}})  # fmt: skip
    # the user's own files beside the outputs (top level) and hidden look-alikes of our temporaries
    (out / "notes.md").write_text("mine")
    (out / ".x.tmp").write_text("mine")
    (out / ".y.old").write_text("mine")
    (out / f"{TMP_PREFIX}documents.123.tmp").write_text("a killed run's temporary")
    (out / "documents" / f"{TMP_PREFIX}a.parquet.9.tmp").write_text("a killed run's temporary")
    run_once(out, {}, {"documents": {"a.parquet": b"2"}})
    assert (out / "documents" / "a.parquet").read_bytes() == b"2"
    assert not (out / "documents" / "b.parquet").exists()
    assert not (out / "model").exists(), "a recipe without train leaves no old model"
    assert not (out / "report").exists(), "nor an old report"
    for mine in ("notes.md", ".x.tmp", ".y.old"):
        assert (out / mine).read_text() == "mine"
    assert not list(out.rglob(f"{TMP_PREFIX}*"))


def test_folder_of_another_kind_is_refused(tmp_path):
    out = tmp_path / "abl"
    folder = RunFolder(out, "ablation", ("summary.json",), manifest_name="summary.json")
    folder.claim()
    folder.finish({})
    folder.release()
    with pytest.raises(RunFolderError, match="ablation run, not a curate run"):
        RunFolder(out, "curate", CURATE_OUTPUTS).claim()


def test_manifest_says_running_while_a_run_republishes(tmp_path):
    out = tmp_path / "run"
    run_once(out, {}, {"documents": {"a.parquet": b"1"}})
    folder = RunFolder(out, "curate", CURATE_OUTPUTS)
    folder.claim()
    try:
        assert json.loads((out / "manifest.json").read_text())["status"] == "running"
    finally:
        folder.release()


def test_second_run_is_refused_while_the_first_holds_the_lock(tmp_path):
    out = tmp_path / "run"
    first = RunFolder(out, "curate", CURATE_OUTPUTS)
    first.claim()
    try:
        with pytest.raises(RunFolderError, match=f"in use by another Refinery run \\(pid {os.getpid()}"):
            RunFolder(out, "curate", CURATE_OUTPUTS).claim()
    finally:
        first.release()
    RunFolder(out, "curate", CURATE_OUTPUTS).claim()  # free again


def test_stale_lock_of_a_dead_process_is_recovered(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / LOCK).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "start": "1", "since": 0}))
    folder = RunFolder(out, "curate", CURATE_OUTPUTS)
    folder.claim()
    assert json.loads((out / LOCK).read_text())["pid"] == os.getpid()
    folder.release()
    assert not (out / LOCK).exists()


def test_lock_of_another_host_is_not_broken(tmp_path):
    lock_dir = tmp_path / "cache"
    lock_dir.mkdir()
    (lock_dir / LOCK).write_text(json.dumps({"pid": 1, "host": "elsewhere.example", "since": 0}))
    with pytest.raises(RunFolderError, match="host elsewhere.example.*remove"):
        Lock(lock_dir).acquire("cache")


@pytest.mark.parametrize(
    ("out", "cache", "inp", "message"),
    [
        ("data/run", "data/run/cache", "data", "run folder .* lies inside the input"),
        ("run", "run/cache", "run/documents", "input .* lies inside the run folder"),
        ("run", "data/cache", "data", "cache .* lies inside the input"),
        ("run", "cache", "data/*.jsonl", None),
        ("data/run", "data/run/cache", "data/*.jsonl", "run folder .* lies inside the input"),
    ],
)
def test_run_folder_and_inputs_must_not_nest(tmp_path, monkeypatch, out, cache, inp, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    if message is None:
        check_places(Path(out), Path(cache), [inp])
    else:
        with pytest.raises(RunFolderError, match=message):
            check_places(Path(out), Path(cache), [inp])


def test_input_reached_through_a_symlink_still_counts_as_inside(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "data")
    with pytest.raises(RunFolderError, match="inside the input"):
        check_places(tmp_path / "link" / "run", tmp_path / "link" / "run" / "cache", [str(tmp_path / "data")])


def test_prune_cache_keeps_only_the_listed_units(tmp_path):
    cache = tmp_path / "cache"
    for unit in ("ingest/a", "ingest/b", "pii/c", "tokenizer/d"):
        (cache / unit).mkdir(parents=True)
        (cache / unit / "done.json").write_text("{}")
    removed = prune_cache(cache, [str(cache / "pii/c"), str(cache / "tokenizer/d")])
    assert removed == 2
    assert sorted(p.relative_to(cache).as_posix() for p in cache.glob("*/*")) == ["pii/c", "tokenizer/d"]


def test_files_follow_the_umask(tmp_path):
    import pipeline.atomic as atomic

    atomic_write_bytes(tmp_path / "a", b"x")
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o666 & ~atomic.UMASK
    old = atomic.UMASK
    try:
        atomic.UMASK = 0o027
        atomic_write_bytes(tmp_path / "b", b"x")
        assert stat.S_IMODE((tmp_path / "b").stat().st_mode) == 0o640
    finally:
        atomic.UMASK = old


def test_cli_refuses_a_foreign_out_folder_with_exit_2_and_touches_nothing(tmp_path):
    from flows.cli import app

    out = user_folder(tmp_path / "mine")
    before = checksums(out)
    result = CliRunner().invoke(app, ["run", "--input", str(Path(__file__).parent.parent / "sample_data" / "misc"),
                                      "--out", str(out)])  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "not empty and was not written by Refinery" in result.output
    assert checksums(out) == before


def test_cli_refuses_out_inside_the_input_with_exit_2(tmp_path):
    from flows.cli import app

    data = tmp_path / "data"
    data.mkdir()
    (data / "a.jsonl").write_text('{"text": "hello there"}\n')
    (data / ".hidden").write_text("mine")
    before = checksums(data)
    result = CliRunner().invoke(app, ["run", "--input", str(data), "--out", str(data / "out")])
    assert result.exit_code == 2, result.output
    assert "inside the input" in result.output
    assert checksums(data) == before


def test_check_run_folder_names_the_default_cache(tmp_path):
    folder = check_run_folder(tmp_path / "run", None, [str(tmp_path / "in")])
    assert folder.root == tmp_path / "run" and not folder.root.exists()


def test_folder_of_an_older_refinery_is_refused_with_a_hint(tmp_path):
    out = tmp_path / "old"
    (out / "documents").mkdir(parents=True)
    (out / "manifest.json").write_text(json.dumps({"code_version": "0.1+abc", "status": "complete"}))
    with pytest.raises(RunFolderError, match="before run markers"):
        RunFolder(out, "curate", CURATE_OUTPUTS).claim()


@pytest.mark.parametrize("cache", ["run", "run/documents/c", "run/notes"])
def test_a_cache_inside_the_run_folder_must_be_its_own_cache_folder(tmp_path, cache):
    out = tmp_path / "run"
    (out / "notes" / "photos").mkdir(parents=True)
    with pytest.raises(RunFolderError, match="a cache inside the run folder must be"):
        check_cache(tmp_path / cache, out)
    check_cache(out / "cache", out)


def test_a_foreign_folder_is_not_taken_as_a_cache_and_is_untouched(tmp_path):
    user = tmp_path / "userdir"
    (user / "proj" / ".tmp-notes").mkdir(parents=True)
    (user / "proj" / ".tmp-notes" / "important.txt").write_text("mine")
    before = checksums(user)
    with pytest.raises(RunFolderError, match="not a Refinery cache"):
        check_cache(user, tmp_path / "run")
    assert checksums(user) == before
    check_cache(tmp_path / "new-cache", tmp_path / "run")  # new: fine
    lock = lock_cache(tmp_path / "new-cache")
    lock.release()
    check_cache(tmp_path / "new-cache", tmp_path / "run")  # marked as Refinery's: fine again


def test_a_cache_inside_another_run_folder_is_refused(tmp_path):
    other = tmp_path / "other"
    run_once(other, {}, {"documents": {"a.parquet": b"1"}})
    for cache in (other, other / "cache", other / "cache" / "x"):
        with pytest.raises(RunFolderError, match="inside the Refinery run folder"):
            check_cache(cache, tmp_path / "run")


def test_a_cache_held_by_another_run_is_refused_before_the_run_folder_is_touched(tmp_path):
    out = tmp_path / "run"
    run_once(out, {}, {"documents": {"a.parquet": b"1"}})
    before = checksums(out)
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / LOCK).write_text(json.dumps({"pid": 1, "host": "elsewhere.example", "since": 0}))
    with pytest.raises(RunFolderError, match="in use by another Refinery run"):
        check_run_folder(out, shared, [str(tmp_path / "in")])
    assert checksums(out) == before


def test_a_hand_edited_marker_cannot_make_a_run_delete_other_files(tmp_path):
    out = tmp_path / "run"
    run_once(out, {}, {"documents": {"a.parquet": b"1"}})
    (tmp_path / "victim.txt").write_text("mine")
    (out / "notes.md").write_text("mine")
    marker = json.loads((out / MARKER).read_text())
    marker["files"] += ["../victim.txt", "notes.md", "/etc/hostname", "documents/../../victim.txt"]
    marker["dirs"] += ["notes"]
    (out / MARKER).write_text(json.dumps(marker))
    run_once(out, {}, {"documents": {"b.parquet": b"2"}})
    assert (tmp_path / "victim.txt").read_text() == "mine" and (out / "notes.md").read_text() == "mine"
    assert not (out / "documents" / "a.parquet").exists()


@pytest.mark.slow
def test_a_run_rejecting_everything_completes_and_file_names_are_redacted(prefect_server, tmp_path):
    """Every document rejected: the tokenizer, shards and train stages are skipped with the reason, the run
    completes; an e-mail used as a folder name does not reach the manifest when the recipe has `pii`."""
    from tests.conftest import run_cli

    data = tmp_path / "in" / "ann.smith@example.com"
    data.mkdir(parents=True)
    (data / "a.jsonl").write_text('{"text": "Too short."}\n')
    recipe = tmp_path / "r.yaml"
    stages = ["ingest: {}", "filter: {}", "pii: {}", "tokenizer: {vocab_size: 512}", "shards: {}", "report: {}"]
    recipe.write_text("name: r\nstages:\n" + "".join(f"  - {s}\n" for s in stages))
    out = tmp_path / "out"
    run_cli(["run", "--recipe", str(recipe), "--input", str(tmp_path / "in"), "--out", str(out)], prefect_server,
            check=True)  # fmt: skip
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["outputs"]["documents"] == 0
    skipped = {s["name"]: s.get("stats", {}).get("skipped") for s in manifest["stages"]}
    assert skipped["tokenizer"] == skipped["shards"] == "no documents left"
    assert "ann.smith@example.com" not in (out / "manifest.json").read_text()
