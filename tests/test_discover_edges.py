"""One bad file never stops a run: discovery and ``read_file`` on unreadable files and folders, FIFOs,
sockets, devices, vanishing or changing files, non-UTF-8 names, symlinks (outside the input, loops,
aliases) and excluded folders. Each such entry is listed and becomes one rejected row with its reason.

Tests run as root here, where ``chmod 000`` does not stop reading: unreadable files and folders are
simulated by making ``os.open`` / ``os.scandir`` fail for one path (the chmod variants run as any
other user)."""

from __future__ import annotations

import errno
import json
import os
import socket
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest

import pipeline.ingest as ingest
from pipeline.ids import doc_id
from pipeline.ingest import IngestConfig, InputFile, discover, read_file
from pipeline.ingest._common import NotRegularFileError, open_input
from pipeline.ingest.config import PROBLEM_FMTS, safe_text
from pipeline.schema import REJECTED_SCHEMA

CFG = IngestConfig()
IS_ROOT = os.geteuid() == 0


def finishes(fn: Callable[[], Any], seconds: float = 10) -> Any:
    """``fn()``'s result, failing the test (instead of hanging it) when it blocks."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(("ok", fn()))
        except BaseException as e:  # noqa: BLE001 - re-raised in the test's thread
            out.append(("error", e))

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), "blocked"
    kind, value = out[0]
    if kind == "error":
        raise value
    return value


def read(f: InputFile) -> tuple[pl.DataFrame, pl.DataFrame]:
    docs, rej = finishes(lambda: read_file(f, CFG))
    assert rej.schema == pl.Schema(REJECTED_SCHEMA)
    return docs, rej


def reject_of(f: InputFile) -> str:
    docs, rej = read(f)
    assert len(docs) == 0 and len(rej) == 1 and rej["path"][0] == f.display and rej["id"][0] == doc_id(f.display)
    return rej["reason"][0]


def by_display(files: list[InputFile]) -> dict[str, InputFile]:
    return {f.display: f for f in files}


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    (root / "sub").mkdir(parents=True)
    (root / "a.jsonl").write_text('{"text": "hello there"}\n')
    (root / "sub" / "b.txt").write_text("A short book.\n")
    return root


# --- special files --------------------------------------------------------------------------------


def test_fifo_is_listed_never_opened(corpus):
    os.mkfifo(corpus / "pipe.jsonl")
    os.mkfifo(corpus / "script")  # no extension: discovery must not sniff it for a shebang
    files, warnings = finishes(lambda: discover([(None, str(corpus))]))
    got = by_display(files)
    for name in ("corpus/pipe.jsonl", "corpus/script"):
        assert got[name].fmt == "special" and got[name].reason == "not a regular file: fifo"
        assert reject_of(got[name]) == "not a regular file: fifo"
    assert "corpus/pipe.jsonl: not a regular file: fifo; it will be recorded as rejected" in warnings
    # Given directly or matched by a glob: the same.
    (f,), _ = finishes(lambda: discover([(None, str(corpus / "pipe.jsonl"))]))
    assert f.fmt == "special" and f.display == "pipe.jsonl"
    files, _ = finishes(lambda: discover([(None, str(corpus / "*.jsonl"))]))
    assert [(f.display, f.fmt) for f in files] == [("corpus/a.jsonl", "jsonl"), ("corpus/pipe.jsonl", "special")]


def test_socket_and_devices(corpus, monkeypatch):
    monkeypatch.chdir(corpus)  # a short relative name: socket paths are limited to ~100 bytes
    sock = socket.socket(socket.AF_UNIX)
    sock.bind("sock.jsonl")
    try:
        got = by_display(discover([(None, str(corpus))])[0])
        assert reject_of(got["corpus/sock.jsonl"]) == "not a regular file: socket"
    finally:
        sock.close()
    (f,), _ = discover([(None, "/dev/null")])
    assert f.fmt == "special" and reject_of(f) == "not a regular file: character device"
    try:
        os.mknod(corpus / "zero.txt", stat.S_IFCHR | 0o600, os.makedev(1, 5))
    except OSError:
        return  # no CAP_MKNOD here: /dev/null above covered devices
    got = by_display(discover([(None, str(corpus))])[0])
    assert reject_of(got["corpus/zero.txt"]) == "not a regular file: character device"


def test_file_replaced_by_fifo_after_discovery(corpus):
    (f,) = [f for f in discover([(None, str(corpus))])[0] if f.display == "corpus/a.jsonl"]
    (corpus / "a.jsonl").unlink()
    os.mkfifo(corpus / "a.jsonl")
    assert reject_of(f) == "not a regular file: fifo"
    # Even past the stat check, opening never blocks: non-blocking open, then fstat.
    with pytest.raises(NotRegularFileError, match="fifo"):
        finishes(lambda: open_input(f))


# --- unreadable, vanished, changing ------------------------------------------------------------------


def _fail_for(monkeypatch: pytest.MonkeyPatch, name: str, target: Path) -> None:
    """Make ``os.<name>`` raise PermissionError for ``target`` (what chmod 000 does for non-root)."""
    real = getattr(os, name)

    def fake(path: Any, *args: Any, **kwargs: Any) -> Any:
        if os.fspath(path) == os.fspath(target):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, name, fake)


def test_unreadable_file(corpus, monkeypatch):
    got = by_display(discover([(None, str(corpus))])[0])
    _fail_for(monkeypatch, "open", corpus / "a.jsonl")
    assert reject_of(got["corpus/a.jsonl"]) == "unreadable: PermissionError: Permission denied"
    docs, _ = read(got["corpus/sub/b.txt"])
    assert len(docs) == 1


def test_unreadable_folder_becomes_a_row(corpus, monkeypatch):
    (corpus / "sub" / "deeper").mkdir()
    (corpus / "sub" / "deeper" / "c.py").write_text("x = 1\n")
    _fail_for(monkeypatch, "scandir", corpus / "sub")
    files, warnings = discover([(None, str(corpus))])
    assert [f.display for f in files] == ["corpus/a.jsonl", "corpus/sub"]
    bad = files[1]
    assert bad.fmt == "unreadable" and bad.reason == "unreadable folder: PermissionError: Permission denied"
    assert reject_of(bad) == bad.reason
    assert any(w.startswith("corpus/sub: unreadable folder") for w in warnings)
    # Through a glob too, and an unreadable input folder itself.
    files, _ = discover([(None, str(corpus / "**" / "*.py"))])
    assert [(f.display, f.fmt) for f in files] == [("corpus/sub", "unreadable")]
    _fail_for(monkeypatch, "scandir", corpus)
    files, _ = discover([(None, str(corpus))])
    assert [(f.display, f.fmt) for f in files] == [("corpus", "unreadable")]


@pytest.mark.skipif(IS_ROOT, reason="root reads files and folders whatever their mode")
def test_chmod_000(corpus):
    (corpus / "a.jsonl").chmod(0)
    (corpus / "sub").chmod(0)
    try:
        got = by_display(discover([(None, str(corpus))])[0])
        assert reject_of(got["corpus/a.jsonl"]) == "unreadable: PermissionError: Permission denied"
        assert got["corpus/sub"].fmt == "unreadable"
    finally:
        (corpus / "sub").chmod(0o755)


def test_vanished_file(corpus):
    got = by_display(discover([(None, str(corpus))])[0])
    (corpus / "a.jsonl").unlink()
    assert reject_of(got["corpus/a.jsonl"]) == "unreadable: FileNotFoundError: No such file or directory"


def test_file_changing_during_read(corpus, monkeypatch):
    got = by_display(discover([(None, str(corpus))])[0])
    real = ingest._READERS["jsonl"]

    def growing(f: InputFile, cfg: IngestConfig) -> Any:
        out = real(f, cfg)
        with open(f.path, "ab") as fh:  # a writer appends while we read
            fh.write(b'{"text": "late"}\n')
        return out

    monkeypatch.setitem(ingest._READERS, "jsonl", growing)
    assert reject_of(got["corpus/a.jsonl"]) == "changed during read: size 24 -> 41 bytes"

    def replacing(f: InputFile, cfg: IngestConfig) -> Any:
        out = real(f, cfg)
        tmp = f.path.with_name("new.tmp")
        tmp.write_bytes(f.path.read_bytes())
        os.replace(tmp, f.path)  # same content and size, another file
        return out

    monkeypatch.setitem(ingest._READERS, "jsonl", replacing)
    assert reject_of(got["corpus/a.jsonl"]) == "changed during read: replaced by another file"


def test_problem_entries_never_raise():
    for fmt in PROBLEM_FMTS:
        f = InputFile(path=Path("/nonexistent/x"), display=f"x.{fmt}", fmt=fmt, source=None, size=-1)
        assert reject_of(f) == f"unreadable: {fmt}"


# --- names that are not UTF-8 -----------------------------------------------------------------------


def test_non_utf8_names(corpus, tmp_path):
    odd = os.fsencode(corpus) + b"/caf\xe9.txt"
    with open(odd, "wb") as fh:
        fh.write(b"A book whose file name is latin-1.\n")
    (corpus / "caf\\xe9.txt").write_text("A file named with a real backslash.\n")
    files, warnings = discover([(None, str(corpus))])
    got = by_display(files)
    plain, literal = got["corpus/caf\\xe9.txt"], got["corpus/caf\\\\xe9.txt"]  # distinct, both valid UTF-8
    assert os.fsencode(plain.path) == odd
    json.dumps(warnings)
    docs, rej = read(plain)
    assert len(rej) == 0 and docs["path"].to_list() == ["corpus/caf\\xe9.txt"] and "latin-1" in docs["text"][0]
    assert docs["id"][0] == doc_id("corpus/caf\\xe9.txt") != doc_id(literal.display)
    docs.write_parquet(tmp_path / "out.parquet")  # surrogates would make polars raise here
    assert [f.display for f in discover([(None, str(corpus))])[0]] == list(got)  # deterministic
    # A root folder with such a name, and a glob below it.
    root = os.fsencode(tmp_path) + b"/d\xff"
    os.mkdir(root)
    with open(root + b"/x.txt", "wb") as fh:
        fh.write(b"words\n")
    (f,), _ = discover([(None, os.fsdecode(root))])
    assert f.display == "d\\xff/x.txt" and len(read(f)[0]) == 1
    (f,), _ = discover([(None, os.fsdecode(root) + "/*.txt")])
    assert f.display == "d\\xff/x.txt"


def test_safe_text_is_injective():
    names = [b"caf\xe9", b"caf\\xe9", b"caf\\\\xe9", "café".encode(), b"a\\b", b"plain"]
    shown = [safe_text(os.fsdecode(n)) for n in names]
    assert len(set(shown)) == len(names)
    assert shown[0] == "caf\\xe9" and shown[3] == "café" and shown[5] == "plain"
    for s in shown:
        s.encode("utf-8")


def test_input_file_dict_round_trip(corpus):
    with open(os.fsencode(corpus) + b"/caf\xe9.jsonl", "wb") as fh:
        fh.write(b'{"text": "odd name"}\n')
    os.symlink("/etc/hostname", corpus / "out.txt")
    files, _ = discover([("web", str(corpus))])
    assert {f.fmt for f in files} >= {"jsonl", "book", "link"}
    for f in files:
        d = f.to_dict()
        assert {"path", "display", "fmt", "source", "size", "reason"} <= set(d)
        back = InputFile.from_dict(orjson.loads(orjson.dumps(d)))  # what Prefect does with task arguments
        assert back == f and os.fsencode(back.path) == os.fsencode(f.path)
        assert InputFile.from_dict(json.loads(json.dumps(d))) == f
    odd = by_display(files)["corpus/caf\\xe9.jsonl"].to_dict()
    assert odd["path_hex"] == (os.fsencode(corpus) + b"/caf\xe9.jsonl").hex()
    assert "path_hex" not in by_display(files)["corpus/a.jsonl"].to_dict()
    assert len(read(InputFile.from_dict(odd))[0]) == 1


# --- symlinks ---------------------------------------------------------------------------------------


def test_symlink_outside_root_rejected(corpus, tmp_path):
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "key.txt").write_text("do not read me\n")
    os.symlink(outside / "key.txt", corpus / "key.txt")
    os.symlink(outside, corpus / "elsewhere")
    os.symlink(corpus / "missing.txt", corpus / "broken.txt")
    os.symlink("loop_b.txt", corpus / "loop_a.txt")
    os.symlink("loop_a.txt", corpus / "loop_b.txt")
    files, _ = discover([(None, str(corpus))])
    got = by_display(files)
    assert reject_of(got["corpus/key.txt"]) == "symlink outside input root"
    assert reject_of(got["corpus/elsewhere"]) == "symlink outside input root"
    assert reject_of(got["corpus/broken.txt"]) == "broken symlink: FileNotFoundError: No such file or directory"
    assert reject_of(got["corpus/loop_a.txt"]).startswith("symlink loop: OSError")
    assert {got[k].fmt for k in ("corpus/key.txt", "corpus/elsewhere", "corpus/broken.txt")} == {"link"}
    assert not any("do not read me" in t for f in files for t in read(f)[0]["text"].to_list())
    # A glob base is the root for globs; a file named directly is followed (the user chose it).
    files, _ = discover([(None, str(corpus / "*.txt"))])
    assert by_display(files)["corpus/key.txt"].fmt == "link"
    (f,), _ = discover([(None, str(corpus / "key.txt"))])
    assert f.fmt == "book" and len(read(f)[0]) == 1


@pytest.mark.parametrize("glob", [False, True])
def test_symlink_loop_each_file_once(corpus, glob):
    os.symlink(".", corpus / "loop")
    os.symlink("..", corpus / "sub" / "up")
    os.symlink("a.jsonl", corpus / "alias.jsonl")
    os.link(corpus / "a.jsonl", corpus / "sub" / "hard.jsonl")
    spec = str(corpus / "**") if glob else str(corpus)
    start = time.perf_counter()
    files, warnings = finishes(lambda: discover([(None, spec)]))
    assert time.perf_counter() - start < 5
    # Read once, under its own path; every other path to it is a reject naming that path.
    got = {f.display: f.fmt for f in files}
    assert got == {"corpus/a.jsonl": "jsonl", "corpus/alias.jsonl": "link", "corpus/sub/b.txt": "book",
                   "corpus/sub/hard.jsonl": "duplicate"}  # fmt: skip
    assert reject_of(by_display(files)["corpus/alias.jsonl"]) == "symlink to corpus/a.jsonl; read once, as that"
    assert reject_of(by_display(files)["corpus/sub/hard.jsonl"]) == "same file as corpus/a.jsonl; read once, as that"
    assert "corpus/alias.jsonl: symlink to corpus/a.jsonl; read once, as that" in warnings
    assert "corpus/sub/hard.jsonl: same file as corpus/a.jsonl; read once, as that" in warnings
    assert "corpus/loop: symlink to a folder inside the input; not followed" in warnings


@pytest.mark.parametrize("glob", [False, True])
def test_symlink_inside_root_sorting_first_is_the_reject(corpus, glob):
    """``inner_link.jsonl -> kept.jsonl``: the link sorts first, yet the file is read under its own
    path and the link is a reject naming it (both paths have a row; the file is read once)."""
    (corpus / "kept.jsonl").write_text('{"text": "kept text"}\n')
    os.symlink("kept.jsonl", corpus / "inner_link.jsonl")
    os.symlink(corpus / "kept.jsonl", corpus / "abs_link.jsonl")  # an absolute link: the same
    files, warnings = discover([(None, str(corpus / "*.jsonl") if glob else str(corpus))])
    got = by_display(files)
    assert got["corpus/kept.jsonl"].fmt == "jsonl"
    docs, rej = read(got["corpus/kept.jsonl"])
    assert docs["path"].to_list() == ["corpus/kept.jsonl#1"] and len(rej) == 0
    for link in ("corpus/inner_link.jsonl", "corpus/abs_link.jsonl"):
        assert got[link].fmt == "link"
        assert reject_of(got[link]) == "symlink to corpus/kept.jsonl; read once, as that"
        assert f"{link}: symlink to corpus/kept.jsonl; read once, as that" in warnings


def test_symlink_is_read_when_its_file_is_not_listed(corpus):
    """A file reached only through links is read once, under the first link's name."""
    os.symlink("sub/b.txt", corpus / "a_link.txt")
    os.symlink("sub/b.txt", corpus / "b_link.txt")
    files, _ = discover([(None, str(corpus / "*.txt"))])  # the glob does not reach sub/b.txt itself
    assert [(f.display, f.fmt) for f in files] == [("corpus/a_link.txt", "book"), ("corpus/b_link.txt", "link")]
    assert read(files[0])[0]["text"].to_list() == ["A short book.\n"]
    assert reject_of(files[1]) == "symlink to corpus/a_link.txt; read once, as that"


def test_same_file_through_two_inputs(corpus):
    files, warnings = discover([(None, str(corpus)), (None, str(corpus / "sub" / "b.txt"))])
    assert [(f.display, f.fmt) for f in files] == [
        ("corpus/a.jsonl", "jsonl"), ("corpus/sub/b.txt", "book"), ("b.txt", "duplicate")
    ]  # fmt: skip
    assert warnings == ["b.txt: same file as corpus/sub/b.txt; read once, as that"]
    assert reject_of(files[2]) == "same file as corpus/sub/b.txt; read once, as that"


def test_globs(corpus):
    (corpus / "sub" / "deep").mkdir()
    (corpus / "sub" / "deep" / "c.py").write_text("x = 1\n")
    (corpus / ".hidden").mkdir()
    (corpus / ".hidden" / "h.py").write_text("x = 2\n")
    shown = lambda spec: [f.display for f in discover([(None, str(corpus / spec))])[0]]  # noqa: E731
    assert shown("**/*.py") == ["corpus/sub/deep/c.py"]
    assert shown("*") == ["corpus/a.jsonl", "corpus/sub/b.txt", "corpus/sub/deep/c.py"]
    assert shown("s*/*") == ["corpus/sub/b.txt", "corpus/sub/deep/c.py"]
    assert shown("sub/**") == ["sub/b.txt", "sub/deep/c.py"]  # displays start at the glob's base folder
    assert shown(".hidden/*.py") == [".hidden/h.py"]  # named explicitly: found
    assert shown("[ab].jsonl") == ["corpus/a.jsonl"]
    with pytest.raises(FileNotFoundError, match="matches no file"):
        discover([(None, str(corpus / "nope" / "*.py"))])


# --- exclude ----------------------------------------------------------------------------------------


def test_exclude_run_folder_inside_input(corpus):
    run = corpus / "run"
    (run / "documents").mkdir(parents=True)
    (run / "documents" / "part-0.parquet").write_bytes(b"PAR1")
    (run / "manifest.json").write_text("{}")
    files, warnings = discover([(None, str(corpus))], exclude=[run])
    assert [f.display for f in files] == ["corpus/a.jsonl", "corpus/sub/b.txt"]
    assert "corpus/run: excluded" in warnings
    files, _ = discover([(None, str(corpus / "**" / "*"))], exclude=[str(run)])
    assert [f.display for f in files] == ["corpus/a.jsonl", "corpus/sub/b.txt"]
    files, warnings = discover([(None, str(run / "manifest.json"))], exclude=[run])
    assert files == [] and warnings == [f"{run / 'manifest.json'}: excluded"]
    # A link into an excluded folder is skipped too; excluding a missing folder changes nothing.
    os.symlink(run / "manifest.json", corpus / "m.json")
    files, _ = discover([(None, str(corpus))], exclude=[run, corpus / "nope"])
    assert [f.display for f in files] == ["corpus/a.jsonl", "corpus/sub/b.txt"]
    files, _ = discover([(None, str(corpus))])
    assert "corpus/run/documents/part-0.parquet" in by_display(files)


def test_exclude_whole_input(corpus):
    files, warnings = discover([(None, str(corpus))], exclude=[corpus.parent])
    assert files == [] and f"{corpus}: folder holds no files" in warnings


# --- every discovered file gives a row naming it ----------------------------------------------------


def assert_rows_for_every_file(files: list[InputFile], cfg: IngestConfig) -> dict[str, tuple[pl.DataFrame, ...]]:
    """Read every file: each gives at least one row, every row names its file (``display`` or
    ``display#locator``) and no id occurs twice. Returns the frames by display path."""
    out: dict[str, tuple[pl.DataFrame, ...]] = {}
    missing, stray = [], []
    for f in files:
        docs, rej = finishes(lambda f=f: read_file(f, cfg), seconds=60)
        paths = docs["path"].to_list() + rej["path"].to_list()
        if not paths:
            missing.append(f.display)
        stray += [p for p in paths if p != f.display and not p.startswith(f"{f.display}#")]
        out[f.display] = (docs, rej)
    ids = pl.concat([pl.concat([d["id"], r["id"]]) for d, r in out.values()])
    assert not missing, f"files without a row: {missing}"
    assert not stray, f"rows naming another path: {stray[:10]}"
    assert ids.is_unique().all(), "an id occurs twice"
    return out


def test_bad_input_corpus_every_file_has_a_row(tmp_path):
    from tests.bad_inputs import make_bad_corpus

    make_bad_corpus(tmp_path / "bad")
    files, _ = discover([(None, str(tmp_path / "bad"))])
    assert_rows_for_every_file(files, CFG)


def test_adversarial_corpus_every_file_has_a_row(tmp_path):
    """The CLI's adversarial corpus (tests/adversarial.py, few tiny files) through discover/read_file alone."""
    from tests.adversarial import make_adversarial_corpus

    corpus = make_adversarial_corpus(tmp_path, n_tiny=20)
    files, _ = discover([(None, str(corpus.input_dir))])
    got = assert_rows_for_every_file(files, IngestConfig(max_record_mb=1))  # bombs: a smaller cap is faster
    reasons = {p: r for _, rej in got.values() for p, r in zip(rej["path"], rej["reason"], strict=True)}
    assert got["corpus/kept.jsonl"][0]["path"].to_list() == ["corpus/kept.jsonl#1"]
    assert reasons["corpus/inner_link.jsonl"] == "symlink to corpus/kept.jsonl; read once, as that"
    assert got["corpus/utf16_bom.txt"][0]["text"].str.contains("quiet teacher borrowed").all()
    assert got["corpus/bom.jsonl"][0]["path"].to_list() == ["corpus/bom.jsonl#1", "corpus/bom.jsonl#2"]
    assert reasons["corpus/deep_json.jsonl#1"].startswith("invalid json: nested too deeply")
    assert got["corpus/deep_json.jsonl"][0]["path"].to_list() == ["corpus/deep_json.jsonl#2"]
    assert reasons["corpus/blank.jsonl"] == "no records: only blank lines"
