"""The adversarial corpus (tests/adversarial.py) through the whole CLI, issue #15.

One run of ingest .. report over the corpus (module fixture), then one check per property: exit 0, peak
memory, nothing of the user's touched, the manifest's accounting, every input file accounted for, every
case's expectation, no planted personal data anywhere in the run folder. Beside it, small runs for the
run-folder rules: ``--out`` at a user's folder, inside an input, an input inside ``--out``, a second run
into the same folder, and a ``dir/**`` glob through a ``loop -> .`` link.

Run: ``.venv/bin/pytest -q -m long tests/test_adversarial_long.py`` (add ``-s`` for the measurements).
As root, chmod 000 does not stop reading; the CLI then runs with CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH
dropped from its bounding set (as a normal user would be), or the unreadable cases are skipped.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from tests.adversarial import (
    ROOT_NAME,
    Corpus,
    diff_states,
    make_adversarial_corpus,
    make_user_files,
    prose,
    scan_run_folder,
    tree_state,
)
from tests.conftest import REPO, VENV_BIN

pytestmark = pytest.mark.long

RSS_LIMIT = int(1.5 * (1 << 30))  # 1.5 GiB
KILL_ABOVE = 6 << 30  # a run past this is killed (and fails): the test machine is shared
MAIN_TIMEOUT_S = 1800
SMALL_TIMEOUT_S = 300
FULL_RECIPE = """
name: adversarial
seed: 0
stages:
  - ingest: {}
  - normalize: {}
  - langid: {keep: [en]}
  - filter: {}
  - dedup: {}
  - pii: {}
  - tokenizer: {vocab_size: 512}
  - shards: {}
  - report: {}
"""
TINY_RECIPE = "name: tiny\nseed: 0\nstages:\n  - ingest: {}\n  - normalize: {}\n"
FIRST_RECIPE = """
name: first
seed: 0
stages:
  - ingest: {}
  - normalize: {}
  - dedup: {}
  - pii: {}
  - tokenizer: {vocab_size: 512}
  - shards: {}
"""
# The first of two concurrent runs trains a little, so it still holds the folder when the second checks it.
SLOW_FIRST_RECIPE = FIRST_RECIPE + "  - train: {preset: nano, steps: 400, batch_size: 4, seq_len: 32}\n"
SECOND_RECIPE = "name: second\nseed: 0\nstages:\n  - ingest: {}\n  - normalize: {}\n  - pii: {}\n"


# --- running the CLI --------------------------------------------------------------------------


def _drop_dac() -> None:
    """In the child before exec: drop CAP_DAC_OVERRIDE (1) and CAP_DAC_READ_SEARCH (2) from the bounding
    set, so root cannot read a chmod 000 file (PR_CAPBSET_DROP = 24)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):
        if libc.prctl(24, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def unreadable_mode(tmp: Path) -> tuple[bool, bool, str]:
    """(chmod 000 denies reading to the CLI, drop capabilities to get there, note)."""
    probe = tmp / "probe-000"
    probe.write_bytes(b"x")
    probe.chmod(0)
    code = f"open({str(probe)!r}, 'rb').read()"
    try:
        plain = subprocess.run([sys.executable, "-c", code], capture_output=True).returncode != 0
        if plain:
            return True, False, "chmod 000 denies reading"
        try:
            dropped = subprocess.run([sys.executable, "-c", code], capture_output=True, preexec_fn=_drop_dac)
        except (OSError, subprocess.SubprocessError) as e:
            return False, False, f"running as root and cannot drop CAP_DAC_OVERRIDE ({e}): unreadable cases skipped"
        if dropped.returncode != 0:
            return True, True, "root: the CLI runs without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH"
        return False, False, "chmod 000 is still readable even without DAC capabilities: unreadable cases skipped"
    finally:
        probe.chmod(0o600)
        probe.unlink()


class TreeRss(threading.Thread):
    """Samples the summed RSS of a process and all its descendants from /proc; kills the process group
    past ``kill_above`` so a runaway run cannot take a shared machine down with it."""

    def __init__(self, pid: int, every: float = 0.2, kill_above: int = KILL_ABOVE) -> None:
        super().__init__(daemon=True)
        self.pid, self.every, self.kill_above = pid, every, kill_above
        self.peak = 0
        self.killed = False
        self.stop = threading.Event()
        self.page = os.sysconf("SC_PAGE_SIZE")

    def _tree_rss(self) -> int:
        parent: dict[int, int] = {}
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    stat = Path(f"/proc/{d}/stat").read_text()
                    parent[int(d)] = int(stat.rsplit(")", 1)[1].split()[1])
                except (OSError, ValueError, IndexError):
                    continue
        tree, frontier = {self.pid}, [self.pid]
        while frontier:
            p = frontier.pop()
            kids = [c for c, pp in parent.items() if pp == p and c not in tree]
            tree.update(kids)
            frontier.extend(kids)
        total = 0
        for p in tree:
            try:
                total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * self.page
            except (OSError, ValueError, IndexError):
                continue
        return total

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, self._tree_rss())
            if self.peak > self.kill_above and not self.killed:
                self.killed = True
                try:
                    os.killpg(self.pid, signal.SIGKILL)
                except OSError:
                    pass
            self.stop.wait(self.every)


@dataclass
class Run:
    args: list[str]
    rc: int
    stdout: str
    stderr: str
    seconds: float
    maxrss: int  # bytes: the child's own peak (wait4), the largest single process of its tree
    tree_peak: int  # bytes: largest sampled sum over the process tree
    timed_out: bool = False
    killed_for_memory: bool = False

    def tail(self, n: int = 3000) -> str:
        cmd = f"refinery {' '.join(self.args)} -> rc {self.rc}"
        return f"{cmd}\n--- stdout\n{self.stdout[-n:]}\n--- stderr\n{self.stderr[-n:]}"


def refinery(args: list[str], env: dict[str, str], timeout: float = SMALL_TIMEOUT_S, drop_dac: bool = False) -> Run:
    """Run the CLI; peak memory from wait4 (the child's own rusage) and from sampling its process tree."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        proc = subprocess.Popen(
            [str(VENV_BIN / "refinery"), *args],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=err,
            start_new_session=True,  # a timeout kills the whole tree
            preexec_fn=_drop_dac if drop_dac else None,
        )
        sampler = TreeRss(proc.pid)
        sampler.start()
        timed_out = False
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - start > timeout:
                timed_out = True
                os.killpg(proc.pid, signal.SIGKILL)
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.2)
        proc.returncode = os.waitstatus_to_exitcode(status)
        sampler.stop.set()
        sampler.join()
        out.seek(0)
        err.seek(0)
        return Run(
            args,
            proc.returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
            time.monotonic() - start,
            usage.ru_maxrss * 1024,
            sampler.peak,
            timed_out,
            sampler.killed,
        )


class FifoFeeder(threading.Thread):
    """Writes one JSONL line to the FIFO each time something opens it for reading, so a reader that opens
    a FIFO gets data (and shows up as having read it) instead of blocking the whole run forever."""

    LINE = b'{"text": "fifo fed line"}\n'

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path, self.opens = path, 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                fd = os.open(self.path, os.O_WRONLY)  # blocks until a reader opens the FIFO
            except OSError:
                return
            if self.stop.is_set():
                os.close(fd)
                return
            self.opens += 1
            try:
                os.write(fd, self.LINE)
            except OSError:
                pass
            os.close(fd)

    def close(self) -> None:
        self.stop.set()
        try:  # unblock a pending open for writing
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
            time.sleep(0.05)
            os.close(fd)
        except OSError:
            pass
        self.join(timeout=5)


def _read_folder(folder: Path) -> pl.DataFrame:
    parts = [pl.read_parquet(p) for p in sorted(folder.glob("*.parquet"))] if folder.is_dir() else []
    return pl.concat(parts, how="diagonal_relaxed") if parts else pl.DataFrame()


def _paths(run_folder: Path) -> list[str]:
    """``path`` of every row in documents/ and rejected/."""
    return [p for sub in ("documents", "rejected") for df in [_read_folder(run_folder / sub)] if df.height
            for p in df["path"].to_list()]  # fmt: skip


# --- the main run -------------------------------------------------------------------------------


@dataclass
class MainRun:
    corpus: Corpus
    out: Path
    run: Run
    before: dict[str, dict[str, tuple]]
    after: dict[str, dict[str, tuple]]
    unreadable: bool
    unreadable_note: str
    fifo_opens: int
    gen_seconds: float
    docs: pl.DataFrame = field(default_factory=pl.DataFrame)
    rejected: pl.DataFrame = field(default_factory=pl.DataFrame)

    def manifest(self) -> dict[str, Any]:
        path = self.out / "manifest.json"
        assert path.is_file(), f"no manifest.json in the run folder\n{self.run.tail()}"
        return json.loads(path.read_text())


@pytest.fixture(scope="module")
def main_run(prefect_server, tmp_path_factory) -> MainRun:
    root = tmp_path_factory.mktemp("adversarial")
    start = time.monotonic()
    corpus = make_adversarial_corpus(root)
    gen_seconds = time.monotonic() - start
    unreadable, drop, note = unreadable_mode(root)
    places = {"input": corpus.input_dir, "user_files": corpus.user_files, "outside": corpus.outside_dir}
    before = {k: tree_state(p) for k, p in places.items()}
    recipe = root / "recipe.yaml"
    recipe.write_text(FULL_RECIPE)
    out = root / "out"
    feeder = FifoFeeder(corpus.input_dir / "pipe.jsonl")
    feeder.start()
    try:
        run = refinery(
            ["run", "--recipe", str(recipe), "--input", str(corpus.input_dir), "--out", str(out)],
            prefect_server,
            timeout=MAIN_TIMEOUT_S,
            drop_dac=drop,
        )
    finally:
        feeder.close()
    after = {k: tree_state(p) for k, p in places.items()}
    result = MainRun(corpus, out, run, before, after, unreadable, note, feeder.opens, gen_seconds)
    result.docs, result.rejected = _read_folder(out / "documents"), _read_folder(out / "rejected")
    flags = (" (TIMED OUT)" if run.timed_out else "") + (" (KILLED: memory)" if run.killed_for_memory else "")
    print(
        f"\n[adversarial] corpus generated in {gen_seconds:.1f} s; run rc={run.rc} in {run.seconds:.0f} s{flags}; "
        f"peak RSS {run.maxrss / 2**20:.0f} MiB (wait4), "
        f"process tree {run.tree_peak / 2**20:.0f} MiB (sampled); {note}; FIFO opened {feeder.opens}x; "
        f"documents {result.docs.height}, rejected {result.rejected.height}"
    )
    return result


def test_run_exits_0(main_run: MainRun):
    r = main_run.run
    assert not r.timed_out, f"timed out after {r.seconds:.0f} s\n{r.tail()}"
    assert not r.killed_for_memory, f"killed past {KILL_ABOVE >> 20} MiB of RSS\n{r.tail()}"
    assert r.rc == 0, r.tail()
    assert main_run.manifest().get("status") == "complete"


def test_peak_memory_below_limit(main_run: MainRun):
    r = main_run.run
    msg = f"peak RSS {r.maxrss / 2**20:.0f} MiB (wait4), tree {r.tree_peak / 2**20:.0f} MiB; limit 1536 MiB"
    if r.killed_for_memory:
        msg += f" (killed past {KILL_ABOVE >> 20} MiB)"
    assert r.maxrss < RSS_LIMIT and r.tree_peak < RSS_LIMIT, msg


def test_foreign_files_untouched(main_run: MainRun):
    """The input (hidden files too), the user's folder and what symlinks point at are byte-identical."""
    changes = [f"{k}: {d}" for k in main_run.before for d in diff_states(main_run.before[k], main_run.after[k])]
    assert not changes, "\n".join(changes)


def test_manifest_accounting(main_run: MainRun):
    manifest = main_run.manifest()
    stages = manifest["stages"]
    bad = [s["name"] for s in stages if s["docs_in"] != s["docs_out"] + s["docs_rejected"]]
    assert not bad, f"docs_in != docs_out + docs_rejected in {bad}"
    doc_stages = [s for s in stages if s["name"] not in ("tokenizer", "shards", "train", "report")]
    for before, after in zip(doc_stages, doc_stages[1:], strict=False):
        assert after["docs_in"] == before["docs_out"], (before["name"], after["name"])
    docs, rej = main_run.docs, main_run.rejected
    assert docs.height + rej.height == stages[0]["docs_in"]
    assert docs.height == manifest["outputs"]["documents"] and rej.height == manifest["outputs"]["rejected"]
    assert pl.concat([docs["id"], rej["id"]]).is_unique().all(), "an id occurs twice in documents/ + rejected/"
    per_stage = dict(rej.group_by("stage").len().iter_rows())
    for s in doc_stages:
        assert per_stage.get(s["name"], 0) == s["docs_rejected"], s["name"]
    assert rej["reason"].is_not_null().all() and (rej["reason"].str.len_chars() > 0).all(), "a reject without reason"


# --- rows per input file --------------------------------------------------------------------------


@dataclass
class Row:
    path: str
    stage: str | None  # None: a document
    reason: str | None
    text: str | None

    @property
    def read(self) -> bool:
        return self.stage is None or self.stage != "ingest"


def _rows(main_run: MainRun) -> list[Row]:
    docs, rej = main_run.docs, main_run.rejected
    rows = [Row(p, None, None, t) for p, t in docs.select("path", "text").iter_rows()] if docs.height else []
    if rej.height:
        rows += [Row(*r) for r in rej.select("path", "stage", "reason", "text").iter_rows()]
    return rows


def _skipped_cases(main_run: MainRun) -> set[str]:
    return set() if main_run.unreadable else {c.name for c in main_run.corpus.cases if c.needs_unreadable}


def _input_entries(main_run: MainRun) -> tuple[set[str], set[str]]:
    """(entries a run must account for, those among them no case names).

    Entries: non-hidden files, file symlinks (dangling too), FIFOs, and folders that cannot be listed.
    Symlinks to folders are checked by their cases instead. Where chmod 000 is ineffective, the files of
    the "unreadable" folder are ordinary inputs (the only entries without a case)."""
    root = main_run.corpus.input_dir
    skipped = _skipped_cases(main_run)
    skipped_dirs = {f for c in main_run.corpus.cases if c.name in skipped for f in c.files}
    unreadable_dirs = {f for c in main_run.corpus.cases if c.needs_unreadable for f in c.files} - skipped_dirs
    out: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(os.fsencode(root)):
        rel_dir = os.fsdecode(os.path.relpath(dirpath, os.fsencode(root)))
        keep = []
        for d in dirnames:
            rel = os.path.normpath(os.path.join(rel_dir, os.fsdecode(d)))
            if d.startswith(b".") or os.path.islink(os.path.join(dirpath, d)):
                continue
            if rel in unreadable_dirs:
                out.add(rel)  # a file-like entry: the run cannot see inside
                continue
            keep.append(d)
        dirnames[:] = keep
        out.update(os.path.normpath(os.path.join(rel_dir, os.fsdecode(n))) for n in filenames if not n.startswith(b"."))
    extra = {e for e in out if any(e.startswith(d + "/") for d in skipped_dirs)}
    return out, extra


def _by_file(files: set[str], rows: list[Row]) -> tuple[dict[str, list[Row]], list[Row]]:
    """Rows grouped by the input file (relative path) they name; rows naming no input file."""
    display = {f"{ROOT_NAME}/{f}": f for f in files}
    # Undecodable names: their display form is the pipeline's choice; match on the part before the odd byte.
    odd = re.compile("[\udc80-\udcff]")
    prefixes = {f"{ROOT_NAME}/{odd.split(f)[0]}": f for f in files if odd.search(f)}
    grouped: dict[str, list[Row]] = {f: [] for f in files}
    stray: list[Row] = []
    for r in rows:
        f = display.get(r.path) or display.get(r.path.rsplit("#", 1)[0])
        if f is None:
            f = next((v for k, v in prefixes.items() if r.path.startswith(k)), None)
        (grouped[f] if f is not None else stray).append(r)
    return grouped, stray


def test_every_input_file_accounted(main_run: MainRun):
    """Every input file has a row (a document or a reject naming it), and no row names anything else."""
    main_run.manifest()
    entries, extra = _input_entries(main_run)
    known = main_run.corpus.expected_files()
    unknown = entries - known - extra
    assert not unknown, f"generator bug: input entries without a case: {sorted(unknown)[:10]}"
    skipped_dirs = {f for c in main_run.corpus.cases if c.name in _skipped_cases(main_run) for f in c.files}
    grouped, stray = _by_file(known | extra, _rows(main_run))
    missing = sorted(f for f in entries - skipped_dirs if not grouped.get(f))
    stray_paths = sorted({r.path for r in stray})
    msg = []
    if missing:
        msg.append(f"{len(missing)} input file(s) without any row: {missing[:20]}")
    if stray_paths:
        msg.append(f"{len(stray_paths)} row path(s) that name no input file: {stray_paths[:20]}")
    assert not msg, "\n".join(msg)


def _check(cond: str, rows: list[Row], all_rows: list[Row]) -> str | None:
    """None when ``cond`` holds for ``rows`` (one file's), else what was seen."""
    loc = None
    if cond.startswith("#"):
        loc, cond = cond[1:].split(" ", 1)
        rows = [r for r in rows if r.path.endswith(f"#{loc}")]
    kind, _, arg = cond.partition(":")
    seen = [f"{r.path}: {r.stage or 'doc'}{': ' + (r.reason or '') if r.stage else ''}" for r in rows][:6]
    if kind == "absent":
        hits = sorted({r.path for r in all_rows if arg in r.path})
        return f"rows for {hits[:5]} ({len(hits)})" if hits else None
    ok = {
        "read": lambda: any(r.read for r in rows),
        "doc": lambda: any(r.stage is None for r in rows),
        "any": lambda: bool(rows),
        "rejected": lambda: any(r.stage is not None for r in rows),
        "notread": lambda: not any(r.read for r in rows),
        "text": lambda: any(r.read and r.text and arg in r.text for r in rows),
    }.get(kind)
    if ok is None:  # STAGE:REGEX
        ok = lambda: any(r.stage == kind and re.search(arg, r.reason or "", re.I) for r in rows)  # noqa: E731
    return None if ok() else f"saw {seen or 'no row'}"


def test_cases(main_run: MainRun):
    """Each case's expectations (see tests/adversarial.py), all reported at once."""
    main_run.manifest()
    rows = _rows(main_run)
    grouped, _ = _by_file(main_run.corpus.expected_files(), rows)
    skipped = _skipped_cases(main_run)
    failures: list[str] = []
    for case in main_run.corpus.cases:
        if case.name in skipped:
            print(f"[adversarial] case {case.name} skipped: {main_run.unreadable_note}")
            continue
        for cond in case.expect:
            if cond.startswith("absent:"):
                problem = _check(cond, [], rows)
                if problem:
                    failures.append(f"{case.name}: expected {cond!r}: {problem}")
                continue
            bad = [(f, p) for f in case.files if (p := _check(cond, grouped.get(f, []), rows))]
            if bad:
                f, p = bad[0]
                more = f" (and {len(bad) - 1} more files)" if len(bad) > 1 else ""
                failures.append(f"{case.name}: expected {cond!r} for {f!r}{more}: {p}")
    assert not failures, f"{len(failures)} failed expectation(s):\n" + "\n".join(failures)


def test_outside_content_never_read(main_run: MainRun):
    main_run.manifest()
    marker = main_run.corpus.outside_marker
    hits = sorted({r.path for r in _rows(main_run) if r.text and marker in r.text})
    assert not hits, f"text from outside the input root in {hits}"


# --- personal data ----------------------------------------------------------------------------------


def test_no_planted_pii_in_run_folder(main_run: MainRun):
    """documents/, rejected/, shards/, manifest.json, report/, tokenizer/ ... (every file but cache/)."""
    main_run.manifest()
    c = main_run.corpus
    findings = [f for f in scan_run_folder(main_run.out, c.pii, c.patterns) if not f.file.startswith("cache/")]
    assert not findings, f"{len(findings)} planted value(s) found:\n" + "\n".join(map(str, findings))


def test_no_planted_pii_in_run_cache(main_run: MainRun):
    """The run folder's own cache/ is part of the run folder: no unit may keep raw personal data either."""
    main_run.manifest()
    c = main_run.corpus
    cache = main_run.out / "cache"
    findings = scan_run_folder(cache, c.pii, c.patterns) if cache.is_dir() else []
    units = sorted({"/".join(f.file.split("/")[:2]) for f in findings})
    assert not findings, f"{len(findings)} planted value(s) in {len(units)} cache unit(s) {units[:10]}:\n" + "\n".join(
        map(str, findings[:40])
    )


# --- run-folder rules: small runs ----------------------------------------------------------------


def _small_input(root: Path, name: str, n: int, seed: int) -> Path:
    import random

    rng = random.Random(seed)
    folder = root / name
    folder.mkdir(parents=True)
    lines = [json.dumps({"text": prose(rng, 120)}) for _ in range(n)]
    (folder / "docs.jsonl").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("adv-small")
    (root / "tiny.yaml").write_text(TINY_RECIPE)
    inp = _small_input(root, "small_in", 3, 1)
    for rel in (".env", ".a.tmp", ".b.old", "sub/.c.tmp", "sub/.d.old", "sub/inner/.e.tmp", "sub/keep.txt"):
        (inp / rel).parent.mkdir(parents=True, exist_ok=True)
        (inp / rel).write_text("mine\n")
    return root


def test_out_at_users_folder_refused(prefect_server, small, tmp_path):
    user = make_user_files(tmp_path / "user_files")
    before = tree_state(user)
    r = refinery(
        ["run", "--recipe", str(small / "tiny.yaml"), "--input", str(small / "small_in"), "--out", str(user)],
        prefect_server,
    )
    changes = diff_states(before, tree_state(user))
    assert r.rc == 2 and not changes, f"{r.tail()}\nchanges: {changes}"


@pytest.mark.parametrize("where", ["sub", "fresh", "."])
def test_out_inside_input_refused(prefect_server, small, where):
    inp = small / "small_in"
    before = tree_state(inp)
    r = refinery(
        ["run", "--recipe", str(small / "tiny.yaml"), "--input", str(inp), "--out", str(inp / where)], prefect_server
    )
    changes = diff_states(before, tree_state(inp))
    assert r.rc == 2 and not changes, f"{r.tail()}\nchanges: {changes}"


@dataclass
class Rerun:
    folder: Path
    alpha: Path
    beta: Path
    first: Run
    second: Run
    second_started: float


@pytest.fixture(scope="module")
def rerun(prefect_server, tmp_path_factory) -> Rerun:
    root = tmp_path_factory.mktemp("adv-rerun")
    alpha, beta = _small_input(root, "alpha", 40, 2), _small_input(root, "beta", 12, 3)
    (root / "first.yaml").write_text(FIRST_RECIPE)
    (root / "second.yaml").write_text(SECOND_RECIPE)
    folder = root / "runB"
    folder.mkdir()  # an empty existing folder is a valid --out
    first = refinery(
        ["run", "--recipe", str(root / "first.yaml"), "--input", str(alpha), "--out", str(folder)], prefect_server
    )
    time.sleep(1.1)  # file times of the second run are strictly later
    started = time.time()
    second = refinery(
        ["run", "--recipe", str(root / "second.yaml"), "--input", str(beta), "--out", str(folder)], prefect_server
    )
    return Rerun(folder, alpha, beta, first, second, started)


def test_second_run_replaces_first(rerun: Rerun):
    assert rerun.first.rc == 0, rerun.first.tail()
    assert rerun.second.rc == 0, rerun.second.tail()
    folder = rerun.folder
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["recipe"]["name"] == "second" and manifest.get("status") == "complete"
    assert [str(rerun.beta)] == manifest["inputs"][0]["inputs"], manifest["inputs"]
    paths = _paths(folder)
    foreign = [p for p in paths if not p.startswith("beta/")]
    assert paths and not foreign, f"rows not from the second input: {foreign[:5]}"
    stale = [
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.relative_to(folder).parts[0] != "cache" and p.stat().st_mtime < rerun.second_started
    ]
    leftovers = [d for d in ("tokenizer", "shards", "dedup_index") if (folder / d).exists()]
    assert not stale and not leftovers, f"outputs of the first run left: {leftovers} {stale[:10]}"


def test_input_inside_out_refused(prefect_server, rerun: Rerun, tmp_path):
    assert rerun.second.rc == 0, "needs the finished run folder of test_second_run_replaces_first"
    inner = _small_input(rerun.folder, "gamma", 3, 4)
    (tmp_path / "tiny.yaml").write_text(TINY_RECIPE)
    before = tree_state(rerun.folder)
    r = refinery(["run", "--recipe", str(tmp_path / "tiny.yaml"), "--input", str(inner), "--out", str(rerun.folder)],
                 prefect_server)  # fmt: skip
    changes = diff_states(before, tree_state(rerun.folder))
    assert r.rc == 2 and not changes, f"{r.tail()}\nchanges: {changes}"


def test_glob_through_loop_reads_each_file_once(prefect_server, tmp_path):
    import random

    rng = random.Random(5)
    globin = tmp_path / "globin"
    (globin / "sub").mkdir(parents=True)
    (globin / "a.jsonl").write_text(json.dumps({"text": prose(rng, 80)}) + "\n" + json.dumps({"text": "two"}) + "\n")
    (globin / "sub" / "b.txt").write_text(prose(rng, 80))
    os.symlink(".", globin / "loop")
    (tmp_path / "tiny.yaml").write_text(TINY_RECIPE)
    out = tmp_path / "out"
    r = refinery(["run", "--recipe", str(tmp_path / "tiny.yaml"), "--input", f"{globin}/**", "--out", str(out)],
                 prefect_server)  # fmt: skip
    assert r.rc == 0, r.tail()
    counts: dict[tuple[str, str], int] = {}
    for path in _paths(out):
        file, _, loc = path.partition("#") if "#" in path else (path, "", "")
        real = os.path.realpath(tmp_path / file)
        counts[(real, loc)] = counts.get((real, loc), 0) + 1
    want = {(str(globin / "a.jsonl"), "1"), (str(globin / "a.jsonl"), "2"), (str(globin / "sub" / "b.txt"), "")}
    reads = {k: v for k, v in counts.items() if k in want}
    assert set(reads) == want and all(v == 1 for v in reads.values()), f"reads per real record: {counts}"


def test_two_runs_into_one_folder_do_not_mix(prefect_server, tmp_path):
    """A second run started while the first holds the folder's lock is refused with exit 2, naming the
    holder, and touches nothing; the folder ends up holding exactly the first run's outputs."""
    alpha, beta = _small_input(tmp_path, "alpha", 40, 6), _small_input(tmp_path, "beta", 12, 7)
    (tmp_path / "first.yaml").write_text(SLOW_FIRST_RECIPE)
    (tmp_path / "second.yaml").write_text(SECOND_RECIPE)
    folder = tmp_path / "shared_out"
    with tempfile.TemporaryFile() as log:
        first = subprocess.Popen(
            [str(VENV_BIN / "refinery"), "run", "--recipe", str(tmp_path / "first.yaml"), "--input", str(alpha),
             "--out", str(folder)],
            env=prefect_server, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while not (folder / ".refinery.lock").exists() and first.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            overlapped = first.poll() is None  # the second run starts while the first holds the lock
            second = refinery(
                ["run", "--recipe", str(tmp_path / "second.yaml"), "--input", str(beta), "--out", str(folder)],
                prefect_server,
            )
            first_last = first.poll() is None  # still working when the second returned: it finishes last
            first_rc = first.wait(timeout=SMALL_TIMEOUT_S)
            print(
                f"\n[adversarial] concurrent runs: overlapped={overlapped}, first rc {first_rc}, second rc {second.rc}"
            )
        finally:
            if first.poll() is None:
                first.kill()
        log.seek(0)
        first_out = log.read().decode(errors="replace")[-3000:]
    assert overlapped and first_last, "the first run ended before the second started: nothing was tested"
    assert first_rc == 0, f"first rc {first_rc}:\n{first_out}"
    assert second.rc == 2 and "in use by another Refinery run" in " ".join(second.stderr.split()), second.tail()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest.get("status") == "complete"
    assert manifest["recipe"]["name"] == "first", manifest["recipe"]["name"]
    root = Path(manifest["inputs"][0]["inputs"][0]).name
    paths = _paths(folder)
    foreign = [p for p in paths if not p.startswith(f"{root}/")]
    assert paths and not foreign, f"manifest says {root}, rows from elsewhere: {foreign[:5]}"
    if manifest["recipe"]["name"] == "second":
        leftovers = [d for d in ("tokenizer", "shards", "dedup_index") if (folder / d).exists()]
        assert not leftovers, f"the other run's outputs beside this one's: {leftovers}"
