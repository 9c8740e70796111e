"""Ownership of a run folder: the one component that writes, replaces and removes a run's outputs.

A run writes only into a new or empty folder, or one holding the marker (``.refinery-run.json``) of an
earlier Refinery run of the same kind. The marker lists every file a run published; a later run
replaces or removes only those, never a file it did not write, and cleans only temporaries named
``.refinery-tmp-*``. A lock file (pid, host, process start time) keeps a second run out of the folder
(and out of a shared cache) while one is running; a lock whose process is gone is recovered.

The manifest is the commit point: while a run works and republishes, ``manifest.json`` says
``"status": "running"``; the complete manifest is written last, after every output is in place, so a
folder never shows a complete manifest beside another run's outputs.

Prefect-free: the curation and ablation flows and the CLI all use it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.atomic import TMP_PREFIX, atomic_write, atomic_write_bytes

MARKER = ".refinery-run.json"
LOCK = ".refinery.lock"
# A lock file that cannot be read (a run killed while writing it) is stale after this long.
_UNREADABLE_LOCK_STALE_S = 30.0


class RunFolderError(Exception):
    """A user error about the run folder, the cache or their place among the inputs (exit code 2)."""


# --- locks ----------------------------------------------------------------------------------------


def _process_start(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), so a reused pid is not mistaken
    for the lock's holder; None where /proc is not available."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: fields restart after the last ")"
    return stat.rsplit(")", 1)[1].split()[19]


def _alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    now = _process_start(pid)
    return start is None or now is None or now == start


def _holder_text(holder: dict[str, Any]) -> str:
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("since", 0)))
    return f"pid {holder.get('pid')} on host {holder.get('host')}, since {since}"


@dataclass
class Lock:
    """An exclusive lock file in ``folder``: created with O_EXCL, removed on release."""

    folder: Path
    held: bool = False

    @property
    def path(self) -> Path:
        return self.folder / LOCK

    def acquire(self, what: str) -> None:
        me = {"pid": os.getpid(), "host": socket.gethostname(), "start": _process_start(os.getpid()),
              "since": time.time()}  # fmt: skip
        self.folder.mkdir(parents=True, exist_ok=True)
        for _ in range(5):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            except FileExistsError:
                self._recover_or_fail(what)
                continue
            with os.fdopen(fd, "w") as fh:
                json.dump(me, fh)
            self.held = True
            return
        raise RunFolderError(f"could not lock {what} {self.folder}: its lock file keeps changing")

    def _read_holder(self, what: str) -> tuple[str, dict[str, Any]] | None:
        """(raw text, holder) of the lock file; None when there is none; {} holder when it is unreadable
        and old enough to be stale; RunFolderError while its holder is alive (or cannot be checked)."""
        try:
            raw = self.path.read_text()
            holder = json.loads(raw)
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            try:
                age = time.time() - self.path.stat().st_mtime
            except FileNotFoundError:
                return None
            if age < _UNREADABLE_LOCK_STALE_S:
                raise RunFolderError(f"{what} {self.folder} is being locked by another run; try again") from None
            return "", {}
        local = holder.get("host") == socket.gethostname()
        if not (local and not _alive(int(holder.get("pid", 0)), holder.get("start"))):
            hint = "" if local else f"; if that run is gone, remove {self.path}"
            raise RunFolderError(
                f"{what} {self.folder} is in use by another Refinery run ({_holder_text(holder)}){hint}"
            )
        return raw, holder

    def peek(self, what: str) -> None:
        """RunFolderError when another live run holds the lock; nothing is changed."""
        self._read_holder(what)

    def _recover_or_fail(self, what: str) -> None:
        found = self._read_holder(what)
        if found is None:
            return  # released meanwhile: try again
        # Stale (its process is gone): move it aside under a unique name, and check that what moved is the
        # stale lock we judged; had another run replaced it meanwhile, put that one back.
        aside = self.folder / f"{TMP_PREFIX}stale-lock-{os.getpid()}-{time.monotonic_ns()}"
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        try:
            if aside.read_text() != found[0]:
                try:
                    os.link(aside, self.path)
                except FileExistsError:
                    pass
                raise RunFolderError(f"{what} {self.folder} was just locked by another run; try again")
        finally:
            aside.unlink(missing_ok=True)

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False


# --- where folders lie ----------------------------------------------------------------------------


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def input_roots(specs: Iterable[str]) -> list[Path]:
    """The folder or file each input names (a glob's fixed leading part), resolved."""
    import glob

    roots = []
    for spec in specs:
        parts = Path(spec).parts
        fixed = []
        for part in parts:
            if glob.has_magic(part):
                break
            fixed.append(part)
        roots.append(_real(Path(*fixed) if fixed else Path(".")))
    return roots


def check_places(out: Path, cache: Path, inputs: Iterable[str]) -> None:
    """Exit-2 errors for a run folder or cache inside an input, or an input inside either: the run would
    read its own outputs on the next run, or write into the user's data."""
    out_r, cache_r = _real(out), _real(cache)
    for spec, root in zip(list(inputs), input_roots(inputs), strict=True):
        for name, place in (("run folder", out_r), ("cache", cache_r)):
            if _inside(place, root):
                raise RunFolderError(f"the {name} {place} lies inside the input {spec!r}; choose a folder outside it")
            if _inside(root, place):
                raise RunFolderError(f"the input {spec!r} lies inside the {name} {place}; choose another folder")


def _legacy_run(manifest: Path) -> bool:
    """A manifest written by a Refinery that did not mark its folders yet (it cannot say which files it wrote)."""
    try:
        return "code_version" in json.loads(manifest.read_text())
    except (OSError, ValueError, TypeError):
        return False


# --- the run folder -------------------------------------------------------------------------------


@dataclass
class RunFolder:
    """A run folder claimed by one run. ``outputs`` are the top-level names runs of this ``kind`` may
    write (files or folders); everything else in the folder is the user's and is never touched."""

    root: Path
    kind: str
    outputs: tuple[str, ...]
    manifest_name: str = "manifest.json"
    owned: set[str] = field(default_factory=set)  # files (relative, "/"-separated) earlier runs published
    owned_dirs: set[str] = field(default_factory=set)  # folders owned whole (the cache)
    published: set[str] = field(default_factory=set)  # files this run published
    lock: Lock | None = None

    # -- claiming --

    def inspect(self) -> None:
        """Refuse (RunFolderError) a folder this run may not write; read the marker of an owned one."""
        root = self.root
        if root.exists() and not root.is_dir():
            raise RunFolderError(f"--out {root} is a file, not a folder")
        if not root.exists():
            return
        marker = root / MARKER
        if not marker.is_file():
            # our own lock and temporaries do not make a folder the user's (a run killed while claiming it)
            entries = [p.name for p in root.iterdir() if p.name != LOCK and not p.name.startswith(TMP_PREFIX)]
            if entries:
                shown = ", ".join(sorted(entries)[:5]) + (" ..." if len(entries) > 5 else "")
                hint = (
                    " (it looks like the folder of a Refinery version from before run markers: delete it to rerun)"
                    if _legacy_run(root / self.manifest_name)
                    else ""
                )
                raise RunFolderError(
                    f"--out {root} is not empty and was not written by Refinery (it holds {shown}){hint}; "
                    "choose a new or empty folder"
                )
            return
        try:
            info = json.loads(marker.read_text())
        except (OSError, ValueError) as err:
            raise RunFolderError(f"--out {root}: unreadable run marker {MARKER} ({err})") from None
        if info.get("kind") != self.kind:
            raise RunFolderError(
                f"--out {root} holds a Refinery {info.get('kind')} run, not a {self.kind} run; choose another folder"
            )
        # Only entries a run can have written count: a hand-edited marker cannot make a run delete
        # anything outside its output names.
        self.owned = {f for f in info.get("files", []) if self._output_path(f)}
        self.owned_dirs = {d for d in info.get("dirs", []) if d == "cache"}
        self._refuse_foreign()
        if not (self.lock and self.lock.held):
            Lock(root).peek("run folder")

    def _output_path(self, rel: Any) -> bool:
        """Whether ``rel`` is a plain relative path below one of this kind's output names."""
        if not isinstance(rel, str) or not rel or rel.startswith("/") or "\\" in rel:
            return False
        parts = rel.split("/")
        return parts[0] in self.outputs and all(p not in ("", ".", "..") for p in parts)

    def _refuse_foreign(self) -> None:
        """An output name holding files no run recorded (the user's, or a half-copied foreign tree)."""
        foreign = []
        for name in self.outputs:
            path = self.root / name
            if name in self.owned_dirs or not (path.exists() or path.is_symlink()):
                continue
            if path.is_symlink() or path.is_file():
                if name not in self.owned or path.is_symlink():
                    foreign.append(name)
                continue
            for dirpath, dirnames, filenames in os.walk(path):
                for n in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
                    rel = Path(dirpath, n).relative_to(self.root).as_posix()
                    if rel not in self.owned and not n.startswith(TMP_PREFIX):
                        foreign.append(rel)
        if foreign:
            shown = ", ".join(sorted(foreign)[:5]) + (" ..." if len(foreign) > 5 else "")
            raise RunFolderError(
                f"--out {self.root} holds files Refinery did not write where its outputs go ({shown}); "
                "move them away or choose another folder"
            )

    def claim(self, cache: Path | None = None) -> None:
        """Lock the folder (and an outside cache), record ownership, clean our own temporaries and mark the
        folder as being written. Raises RunFolderError, touching nothing, when the folder is not ours."""
        self.inspect()
        self.root.mkdir(parents=True, exist_ok=True)
        self.lock = Lock(self.root)
        self.lock.acquire("run folder")
        try:
            self.inspect()  # again under the lock: another run may have changed it meanwhile
            if cache is not None and self.owns_cache(cache):
                self.owned_dirs.add("cache")
            self._write_marker(self.owned)
            self.clean_temporaries()
            # The commit point says "running" until the complete manifest replaces it.
            self.write_json(self.manifest_name, {"status": "running", "since": time.time(), "pid": os.getpid()})
        except BaseException:
            self.release()
            raise

    def owns_cache(self, cache: Path) -> bool:
        """Whether ``cache`` is this folder's own (the default ``OUT/cache``), not a shared ``--cache-dir``."""
        return _real(cache) == _real(self.root) / "cache"

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()

    # -- writing --

    def _write_marker(self, files: set[str]) -> None:
        info = {"refinery_run": 1, "kind": self.kind, "files": sorted(files), "dirs": sorted(self.owned_dirs)}
        atomic_write_bytes(self.root / MARKER, json.dumps(info, indent=1).encode())

    def _own(self, rels: Iterable[str]) -> None:
        """Record files as ours *before* they are written: a kill mid-copy leaves them owned, so the next
        run may replace them."""
        rels = set(rels)
        new = rels - self.owned
        self.published |= rels
        if new:
            self.owned |= new
            self._write_marker(self.owned)

    def write(self, rel: str, writer: Callable[[Path], None]) -> None:
        """Publish ``rel`` written by ``writer(tmp)`` (atomically)."""
        self._own([rel])
        atomic_write(self.root / rel, writer)

    def write_bytes(self, rel: str, data: bytes) -> None:
        self._own([rel])
        atomic_write_bytes(self.root / rel, data)

    def write_json(self, rel: str, data: Any) -> None:
        self.write_bytes(rel, json.dumps(data, indent=2, sort_keys=True).encode())

    def publish_dir(self, rel: str, files: dict[str, Path], keep: tuple[str, ...] = ()) -> None:
        """Make folder ``rel`` hold exactly ``files`` (name -> source), each copied atomically; owned files
        no longer among them (nor in ``keep``, names written separately) are removed, any other file is
        left alone."""
        prefix = f"{rel}/" if rel else ""  # "" is the folder itself
        rels = {f"{prefix}{name}": src for name, src in files.items()}
        kept = {f"{prefix}{name}" for name in (*keep, self.manifest_name)}
        self._own(rels)
        for r, src in sorted(rels.items()):
            atomic_write(self.root / r, lambda tmp, src=src: shutil.copyfile(src, tmp))
        self._remove_owned(lambda r: r.startswith(prefix) and r not in rels and r not in kept)

    def publish_tree(self, rel: str, src: Path, skip: tuple[str, ...] = ("done.json",)) -> None:
        """Publish every file below ``src`` as folder ``rel``."""
        files = {p.relative_to(src).as_posix(): p for p in sorted(src.rglob("*")) if p.is_file() and p.name not in skip}
        self.publish_dir(rel, files)

    def track(self, rel: str) -> None:
        """Record files a writer of ours put below ``rel`` directly (the report's pages)."""
        path = self.root / rel
        files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path] if path.is_file() else []
        self._own(p.relative_to(self.root).as_posix() for p in files if not p.name.startswith(TMP_PREFIX))

    def remove_stale(self, keep: tuple[str, ...] = ()) -> None:
        """Remove owned outputs this run did not publish (a recipe without ``train`` leaves no old model),
        except the manifest and files below the folders in ``keep`` (about to be written)."""
        spared = (self.manifest_name, *(f"{k}/" for k in keep))
        self._remove_owned(lambda r: r not in self.published and not r.startswith(spared))

    def finish(self, manifest: dict[str, Any]) -> None:
        """Remove every owned output this run did not publish, then write the manifest: the commit point."""
        self.remove_stale()
        self.write_json(self.manifest_name, manifest)
        self._write_marker(self.owned)

    def _remove_owned(self, stale: Any) -> None:
        gone = sorted(r for r in self.owned if stale(r))
        for r in gone:
            (self.root / r).unlink(missing_ok=True)
        self.owned -= set(gone)
        self._write_marker(self.owned)
        # folders left empty by the removal, deepest first; never a folder holding anything else
        for d in sorted({str(Path(r).parent) for r in gone if "/" in r}, key=lambda s: -s.count("/")):
            for folder in [self.root / d, *(self.root / d).parents]:
                if folder == self.root or not _inside(folder, self.root):
                    break
                try:
                    folder.rmdir()
                except OSError:
                    break

    def clean_temporaries(self) -> None:
        """Remove temporaries with our own unique prefix that a killed run left in its output folders."""
        found = [p for p in self.root.iterdir() if p.name.startswith(TMP_PREFIX)]
        for name in self.outputs:
            folder = self.root / name
            if folder.is_dir() and not folder.is_symlink() and name not in self.owned_dirs:
                for dirpath, dirnames, filenames in os.walk(folder):
                    found += [Path(dirpath, n) for n in filenames + dirnames if n.startswith(TMP_PREFIX)]
        for p in found:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)


# The top-level names each kind of run writes, its manifest first; anything else in its folder is the user's.
CURATE_OUTPUTS = ("manifest.json", "documents", "rejected", "shards", "tokenizer", "model", "report", "dedup_index",
                  "cache")  # fmt: skip
ABLATION_OUTPUTS = ("summary.json", "results.parquet", "report", "cache")
# `refinery export-hf`: a Hugging Face model folder.
HF_EXPORT_OUTPUTS = ("refinery_export.json", "config.json", "generation_config.json", "model.safetensors",
                     "tokenizer.model", "tokenizer_config.json")  # fmt: skip
_KINDS = {"curate": CURATE_OUTPUTS, "ablation": ABLATION_OUTPUTS, "hf-export": HF_EXPORT_OUTPUTS}


CACHE_MARKER = ".refinery-cache.json"


def check_cache(cache: Path, out: Path) -> None:
    """RunFolderError unless ``cache`` is the run folder's own ``OUT/cache``, or a folder outside every run
    folder that is new, empty or already a Refinery cache (its marker), and no live run holds it. A run
    cleans half-written units in its cache and prunes its own: never in a folder that is not a cache."""
    cache_r, out_r = _real(cache), _real(out)
    if cache_r == out_r / "cache":
        return  # owned through the run folder's marker
    if _inside(cache_r, out_r):
        raise RunFolderError(f"a cache inside the run folder must be {out_r / 'cache'}, not {cache_r}")
    for folder in (cache_r, *cache_r.parents):
        if (folder / MARKER).is_file():
            raise RunFolderError(
                f"the cache {cache_r} lies inside the Refinery run folder {folder}, which manages its own cache; "
                "choose a folder outside it"
            )
    if cache_r.exists() and not cache_r.is_dir():
        raise RunFolderError(f"the cache {cache_r} is a file, not a folder")
    if cache_r.is_dir() and not (cache_r / CACHE_MARKER).is_file():
        entries = [p.name for p in cache_r.iterdir() if p.name != LOCK and not p.name.startswith(TMP_PREFIX)]
        if entries:
            raise RunFolderError(
                f"--cache-dir {cache_r} is not empty and is not a Refinery cache (no {CACHE_MARKER}); "
                "choose a new or empty folder"
            )
    Lock(cache_r).peek("cache")


def check_run_folder(
    out: Path | str, cache_dir: Path | str | None, inputs: list[str], kind: str = "curate"
) -> RunFolder:
    """The run folder ``out`` of a ``kind`` run, checked (RunFolderError, nothing touched), not yet claimed."""
    cache = Path(cache_dir) if cache_dir else Path(out) / "cache"
    check_places(Path(out), cache, inputs)
    outputs = _KINDS[kind]
    folder = RunFolder(Path(out), kind, outputs, manifest_name=outputs[0])
    folder.inspect()
    check_cache(cache, Path(out))
    return folder


def prune_cache(cache: Path, keep: Iterable[str]) -> int:
    """Remove every unit folder of ``cache`` except ``keep``; returns how many went. Used on a run folder's
    own cache when the recipe removes personal data: units made before ``pii`` hold raw text, and a
    finished run folder must not. A rerun recomputes them and finds every later unit still cached."""
    keep_real = {_real(Path(k)) for k in keep}
    removed = 0
    for step in sorted(cache.iterdir()) if cache.is_dir() else []:
        if not step.is_dir() or step.is_symlink():
            continue
        for unit in sorted(step.iterdir()):
            if _real(unit) not in keep_real:
                shutil.rmtree(unit, ignore_errors=True) if unit.is_dir() else unit.unlink(missing_ok=True)
                removed += 1
        if not any(step.iterdir()):
            step.rmdir()
    return removed


def lock_cache(cache: Path) -> Lock:
    """Lock the cache (the run folder's own as well as a shared ``--cache-dir``): two runs working in one
    cache at once would clean each other's half-written units. Marks a new cache as Refinery's."""
    lock = Lock(cache)
    lock.acquire("cache")
    if not (cache / CACHE_MARKER).is_file():
        atomic_write_bytes(cache / CACHE_MARKER, json.dumps({"refinery_cache": 1}).encode())
    return lock
