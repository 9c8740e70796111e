"""Finding input files and telling their format from their names."""

from __future__ import annotations

import errno
import fnmatch
import glob
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from pipeline.schema import SOURCES

from ._common import file_kind, open_regular, os_reason
from .config import InputFile, safe_text

# Source-code extensions -> language name (also used by the code reader).
CODE_EXTS: dict[str, str] = {
    "py": "python", "pyi": "python", "js": "javascript", "mjs": "javascript", "cjs": "javascript",
    "jsx": "javascript", "ts": "typescript", "tsx": "typescript", "java": "java", "kt": "kotlin",
    "kts": "kotlin", "scala": "scala", "rs": "rust", "c": "c", "h": "c", "cc": "cpp", "cpp": "cpp",
    "cxx": "cpp", "hpp": "cpp", "hh": "cpp", "hxx": "cpp", "cs": "csharp", "go": "go", "rb": "ruby",
    "php": "php", "pl": "perl", "pm": "perl", "lua": "lua", "r": "r", "jl": "julia", "swift": "swift",
    "m": "objective-c", "mm": "objective-c", "sh": "shell", "bash": "shell", "zsh": "shell",
    "fish": "shell", "ps1": "powershell", "sql": "sql", "hs": "haskell", "ml": "ocaml", "mli": "ocaml",
    "ex": "elixir", "exs": "elixir", "erl": "erlang", "clj": "clojure", "dart": "dart", "zig": "zig",
    "nim": "nim", "vue": "vue", "svelte": "svelte", "css": "css", "scss": "scss", "less": "less",
    "proto": "protobuf", "cmake": "cmake", "gradle": "groovy", "groovy": "groovy", "f90": "fortran",
    "tex": "tex", "asm": "assembly", "s": "assembly",
}  # fmt: skip
# Data/config/doc formats: code only when found inside a folder (a repository), not on their own.
FOLDER_CODE_EXTS: dict[str, str] = {
    "json": "json", "yaml": "yaml", "yml": "yaml", "toml": "toml", "md": "markdown", "rst": "rst",
    "xml": "xml", "ini": "ini", "cfg": "ini", "lock": "lockfile", "map": "sourcemap", "csv": "csv",
    "tsv": "tsv",
}  # fmt: skip
CODE_NAMES: dict[str, str] = {
    "makefile": "makefile", "gnumakefile": "makefile", "dockerfile": "dockerfile",
    "containerfile": "dockerfile", "cmakelists.txt": "cmake", "gemfile": "ruby", "rakefile": "ruby",
    "vagrantfile": "ruby", "go.mod": "go", "go.sum": "lockfile", "yarn.lock": "lockfile",
    "cargo.lock": "lockfile", "poetry.lock": "lockfile", "package-lock.json": "lockfile",
    "pnpm-lock.yaml": "lockfile", "requirements.txt": "pip-requirements",
}  # fmt: skip


def parse_input_arg(arg: str) -> tuple[str | None, str]:
    """``"web=some/dir"`` -> ``("web", "some/dir")``; a plain path -> ``(None, path)``.

    Only a known source name before ``=`` counts as a prefix, so a file whose name holds ``=``
    still works; an unknown name in front of ``=`` for a path that does not exist is an error.
    """
    name, sep, rest = arg.partition("=")
    if sep and name in SOURCES and rest:
        return name, rest
    if sep and name.isidentifier() and not os.path.exists(arg):
        raise ValueError(f"unknown source {name!r} in {arg!r}; expected one of {', '.join(SOURCES)}")
    return None, arg


def detect_format(name: str, in_folder: bool) -> str:
    """Format from a file name: warc, arc, wet, wat, html, jsonl, parquet, book, code or unknown."""
    low = name.lower()
    for suffix, fmt in (
        (".warc.wet.gz", "wet"), (".wet.gz", "wet"), (".wet", "wet"),
        (".warc.wat.gz", "wat"), (".wat.gz", "wat"), (".wat", "wat"),
        (".warc.gz", "warc"), (".warc", "warc"), (".arc.gz", "arc"), (".arc", "arc"),
        (".html.gz", "html"), (".htm.gz", "html"), (".html", "html"), (".htm", "html"),
        (".jsonl", "jsonl"), (".jsonl.gz", "jsonl"), (".jsonl.zst", "jsonl"), (".jsonl.zstd", "jsonl"),
        (".ndjson", "jsonl"), (".ndjson.gz", "jsonl"), (".ndjson.zst", "jsonl"),
        (".parquet", "parquet"),
    ):  # fmt: skip
        if low.endswith(suffix):
            return fmt
    if low in CODE_NAMES:
        return "code"
    if low.endswith(".txt") or low.endswith(".txt.gz"):
        return "book"
    ext = low.rsplit(".", 1)[1] if "." in low.lstrip(".") else ""
    if ext in CODE_EXTS or (in_folder and ext in FOLDER_CODE_EXTS):
        return "code"
    return "unknown"


def _has_shebang(path: Path) -> bool:
    """Whether a regular file starts with ``#!`` (never blocks: a FIFO is refused, not opened)."""
    try:
        with open_regular(path) as fh:
            return fh.read(2) == b"#!"
    except OSError:
        return False


@dataclass
class _Found:
    """One discovered entry and the real file behind it ((st_dev, st_ino), None for a problem).

    ``link`` marks a symlink to a file inside the input: the file is read under its own path when
    discovery lists that too, the link then being a reject that names it.
    """

    file: InputFile
    key: tuple[int, int] | None = None
    link: bool = False


def _problem(path: Path, display: str, source: str | None, fmt: str, reason: str) -> _Found:
    return _Found(InputFile(path=path, display=safe_text(display), fmt=fmt, source=source, size=-1, reason=reason))


def _entry(path: Path, display: str, source: str | None, in_folder: bool, st: os.stat_result) -> _Found:
    """An entry whose (followed) stat is known: a file to read, or a ``special`` one never opened."""
    if not stat.S_ISREG(st.st_mode):
        return _problem(path, display, source, "special", f"not a regular file: {file_kind(st.st_mode)}")
    name = safe_text(path.name)
    fmt = detect_format(name, in_folder)
    if fmt == "unknown" and "." not in name and _has_shebang(path):
        fmt = "code"  # extensionless script
    f = InputFile(path=path, display=safe_text(display), fmt=fmt, source=source, size=st.st_size)
    return _Found(f, (st.st_dev, st.st_ino))


class _Walk:
    """Walks one input (folder or glob) below ``root`` (resolved) without following folder links.

    Files are found with ``os.scandir`` rather than ``os.walk``/``glob``: a folder that cannot be
    listed becomes an ``unreadable`` entry instead of vanishing, and a symlink is judged by where it
    points: outside ``root`` (or broken) it is a ``link`` entry, to a file inside it the file (read
    once, see ``discover``), to a folder inside it a warning (its files are found by their real path,
    so a ``loop -> .`` link cannot make the walk endless).
    """

    def __init__(self, root: Path, prefix: str, source: str | None, exclude: list[Path], warnings: list[str]):
        self.root, self.prefix, self.source = root, prefix, source
        self.exclude, self.warnings = exclude, warnings
        self.found: dict[str, _Found] = {}  # by path below root: one entry however often it is reached
        self.warned: set[str] = set()

    def display(self, rel: str) -> str:
        return f"{self.prefix}{rel}"

    def excluded(self, path: Path, rel: str) -> bool:
        """Whether ``path`` lies in an excluded folder (warned about once)."""
        if not any(path.is_relative_to(e) for e in self.exclude):
            return False
        shown = safe_text(self.display(rel).rstrip("/") or str(path))
        if shown not in self.warned:
            self.warned.add(shown)
            self.warnings.append(f"{shown}: excluded")
        return True

    def listdir(self, path: Path, rel: str) -> list[os.DirEntry[str]]:
        """Visible entries of a folder, sorted by name; [] after recording an unreadable one."""
        try:
            with os.scandir(path) as it:
                return sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
        except OSError as e:
            shown = self.display(rel).rstrip("/") or path.name
            self.add(rel, _problem(path, shown, self.source, "unreadable", f"unreadable folder: {os_reason(e)}"))
            return []

    def add(self, rel: str, found: _Found) -> None:
        self.found.setdefault(rel, found)

    def entry(self, de: os.DirEntry[str], rel: str) -> Path | None:
        """Record a non-folder entry; return the path of a real folder to descend into."""
        path = Path(de.path)
        if self.excluded(path, rel):
            return None
        try:
            if de.is_dir(follow_symlinks=False):
                return path
            if de.is_symlink():
                self.link(path, rel)
            else:
                self.add(rel, _entry(path, self.display(rel), self.source, True, de.stat(follow_symlinks=False)))
        except OSError as e:  # vanished or unreadable between listing and stat
            self.add(rel, _problem(path, self.display(rel), self.source, "unreadable", f"unreadable: {os_reason(e)}"))
        return None

    def link(self, path: Path, rel: str) -> None:
        shown = self.display(rel)
        target = Path(os.path.realpath(path))
        try:
            st = os.stat(path)
        except OSError as e:
            why = "symlink loop" if e.errno == errno.ELOOP else "broken symlink"
            self.add(rel, _problem(path, shown, self.source, "link", f"{why}: {os_reason(e)}"))
            return
        if not target.is_relative_to(self.root):
            self.add(rel, _problem(path, shown, self.source, "link", "symlink outside input root"))
        elif any(target.is_relative_to(e) for e in self.exclude):
            self.warnings.append(f"{safe_text(shown)}: link into an excluded folder; skipped")
        elif stat.S_ISDIR(st.st_mode):
            self.warnings.append(f"{safe_text(shown)}: symlink to a folder inside the input; not followed")
        else:
            found = _entry(path, shown, self.source, True, st)
            found.link = found.key is not None
            self.add(rel, found)

    def tree(self, top: Path, rel: str) -> None:
        """Every entry below the folder ``top`` (an explicit stack: no recursion limit on depth)."""
        stack = [(top, rel)]
        while stack:
            d, r = stack.pop()
            for de in self.listdir(d, r):
                sub = f"{r}{de.name}"
                child = self.entry(de, sub)
                if child is not None:
                    stack.append((child, f"{sub}/"))

    def pattern(self, parts: tuple[str, ...]) -> bool:
        """Entries matching glob components ``parts`` below root (a matched folder: all its files).

        ``*``, ``?``, ``[...]`` match within one name and ``**`` any number of folders, as
        ``glob(recursive=True)``; names starting with "." match only a component that does too.
        Returns whether anything matched.
        """
        matched = False
        stack: list[tuple[Path, str, int]] = [(self.root, "", 0)]
        seen: set[tuple[str, int]] = set()
        while stack:
            d, r, i = stack.pop()
            if (r, i) in seen:
                continue
            seen.add((r, i))
            if i == len(parts):
                matched = True
                self.tree(d, r)
                continue
            part = parts[i]
            for de in self.listdir(d, r):
                sub = f"{r}{de.name}"
                real_dir = de.is_dir(follow_symlinks=False)
                if part == "**":
                    if real_dir and not self.excluded(Path(de.path), sub):
                        stack.append((Path(de.path), f"{sub}/", i))
                    continue
                if not _name_matches(de.name, part):
                    continue
                if i + 1 == len(parts):
                    matched = True
                    child = self.entry(de, sub)
                    if child is not None:
                        self.tree(child, f"{sub}/")
                elif real_dir:
                    if not self.excluded(Path(de.path), sub):
                        stack.append((Path(de.path), f"{sub}/", i + 1))
                elif de.is_symlink() and de.is_dir():
                    self.link(Path(de.path), sub)  # a link to a folder: recorded or warned about, not followed
            if part == "**":
                stack.append((d, r, i + 1))
        return matched


def _name_matches(name: str, part: str) -> bool:
    if name.startswith(".") and not part.startswith("."):
        return False
    return fnmatch.fnmatchcase(name, part)


def _glob_base(spec: str) -> tuple[Path, tuple[str, ...]]:
    """The folder a glob is relative to (its leading components without wildcards) and the rest."""
    parts = Path(spec).parts
    keep: list[str] = []
    for part in parts:
        if glob.has_magic(part):
            break
        keep.append(part)
    return (Path(*keep) if keep else Path(".")), tuple(parts[len(keep) :])


def _resolve(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _discover_glob(spec: str, source: str | None, exclude: list[Path], warnings: list[str]) -> list[_Found]:
    base, parts = _glob_base(spec)
    root = _resolve(base)
    walk = _Walk(root, f"{root.name}/" if root.name else "", source, exclude, warnings)
    if not root.is_dir():
        raise FileNotFoundError(f"input glob {spec!r} matches no file")
    if walk.excluded(root, ""):
        return []
    if not walk.pattern(parts) and not walk.found:  # (found: folders on the way that could not be listed)
        raise FileNotFoundError(f"input glob {spec!r} matches no file")
    return [walk.found[k] for k in sorted(walk.found)]


def _discover_path(spec: str, source: str | None, exclude: list[Path], warnings: list[str]) -> list[_Found]:
    p = Path(spec)
    try:
        st = os.stat(p)
    except (FileNotFoundError, NotADirectoryError):
        raise FileNotFoundError(f"input path {spec!r} does not exist") from None
    except OSError as e:
        return [_problem(p, p.name or spec, source, "unreadable", f"unreadable: {os_reason(e)}")]
    if not stat.S_ISDIR(st.st_mode):
        if any(_resolve(p).is_relative_to(e) for e in exclude):
            warnings.append(f"{safe_text(spec)}: excluded")
            return []
        return [_entry(p, p.name, source, False, st)]
    root = _resolve(p)
    walk = _Walk(root, f"{root.name or 'input'}/", source, exclude, warnings)
    if not walk.excluded(root, ""):
        walk.tree(root, "")
    if not walk.found:
        warnings.append(f"{safe_text(spec)}: folder holds no files")
    return [walk.found[k] for k in sorted(walk.found)]


def discover(
    inputs: list[tuple[str | None, str]], exclude: Sequence[str | os.PathLike[str]] = ()
) -> tuple[list[InputFile], list[str]]:
    """Expand (forced source, file | folder | glob) inputs into files, in a deterministic order.

    Returns the files and a list of warnings. Files of unsupported formats are returned too
    (``fmt="unknown"`` / ``"wat"``), and so are entries that cannot be read at all (``fmt`` in
    ``PROBLEM_FMTS``: an unlistable folder or unstat-able file ``"unreadable"``, a FIFO/socket/device
    ``"special"``, a broken symlink or one leading outside the input ``"link"``; ``reason`` says
    which), so that ``read_file`` records a reject for each instead of dropping them silently.
    A file reached by several paths (links, hard links, overlapping inputs) is read once, under its
    first path that is not a symlink (a link's name is only used when the file is reached through
    links alone); each other path is a ``"link"`` (symlink) or ``"duplicate"`` entry naming the path
    that reads it, so every path still gets its row. Nothing under a folder in ``exclude`` is listed
    (say the run's own output folder, when it lies inside an input). Raises FileNotFoundError for a
    missing path or an empty glob.
    """
    excl = [_resolve(Path(e)) for e in exclude]
    warnings: list[str] = []
    found: list[_Found] = []
    for source, spec in inputs:
        if source is not None and source not in SOURCES:
            raise ValueError(f"unknown source {source!r}; expected one of {', '.join(SOURCES)}")
        find = _discover_glob if glob.has_magic(spec) else _discover_path
        found += find(spec, source, excl, warnings)
    files: list[InputFile] = []
    found = _unique_displays(found, warnings)
    readers = _readers(found)
    for entry in found:
        f = entry.file
        reader = readers.get(entry.key) if entry.key is not None else None
        if reader is not None and reader != f.display:
            f = _duplicate(entry, reader)
            warnings.append(f"{f.display}: {f.reason}")
        elif f.fmt == "unknown":
            warnings.append(f"{f.display}: unsupported file type; it will be recorded as rejected")
        elif f.fmt == "wat":
            warnings.append(f"{f.display}: WAT metadata file holds no text; it will be recorded as rejected")
        elif f.reason:
            warnings.append(f"{f.display}: {f.reason}; it will be recorded as rejected")
        files.append(f)
    return files, warnings


def _unique_displays(found: list[_Found], warnings: list[str]) -> list[_Found]:
    """``found`` without entries whose display path an earlier one has: ids hash the display path,
    so a second entry under it would give rows with the same ids."""
    seen: set[str] = set()
    out: list[_Found] = []
    for entry in found:
        if entry.file.display in seen:
            warnings.append(f"{entry.file.display}: same display path as an earlier input; skipped")
            continue
        seen.add(entry.file.display)
        out.append(entry)
    return out


def _readers(found: list[_Found]) -> dict[tuple[int, int], str]:
    """The display path each real file is read under: its first path that is not a symlink, else
    (reached through links alone) its first link.

    Symlinks lose even when they sort first (``inner_link.jsonl -> kept.jsonl``): the file's own
    path must carry its documents, whatever names links to it happen to have.
    """
    readers: dict[tuple[int, int], str] = {}
    for real_first in (True, False):
        for entry in found:
            if entry.key is not None and (not entry.link or not real_first):
                readers.setdefault(entry.key, entry.file.display)
    return readers


def _duplicate(entry: _Found, reader: str) -> InputFile:
    """The entry of a path whose file is read under ``reader``: a reject naming it, never read."""
    fmt, what = ("link", "symlink to") if entry.link else ("duplicate", "same file as")
    return replace(entry.file, fmt=fmt, size=-1, reason=f"{what} {reader}; read once, as that")
