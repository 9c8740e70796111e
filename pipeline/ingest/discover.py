"""Finding input files and telling their format from their names."""

from __future__ import annotations

import glob
import os
from pathlib import Path

from pipeline.schema import SOURCES

from .config import InputFile

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
    try:
        with open(path, "rb") as fh:
            return fh.read(2) == b"#!"
    except OSError:
        return False


def _make(path: Path, display: str, source: str | None, in_folder: bool) -> InputFile:
    fmt = detect_format(path.name, in_folder)
    if fmt == "unknown" and "." not in path.name and _has_shebang(path):
        fmt = "code"  # extensionless script
    try:
        size = path.stat().st_size
    except OSError:
        size = -1  # read_file turns the error into a reject
    return InputFile(path=path, display=display, fmt=fmt, source=source, size=size)


def _walk(root: Path) -> list[Path]:
    """All files below ``root``, sorted, skipping hidden files and folders (.git, .DS_Store ...)."""
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        out.extend(Path(dirpath) / n for n in filenames if not n.startswith("."))
    return sorted(out, key=lambda p: p.relative_to(root).as_posix())


def _glob_base(spec: str) -> Path:
    """The folder a glob is relative to: its leading components without wildcards."""
    parts = Path(spec).parts
    keep: list[str] = []
    for part in parts:
        if glob.has_magic(part):
            break
        keep.append(part)
    return Path(*keep) if keep else Path(".")


def discover(inputs: list[tuple[str | None, str]]) -> tuple[list[InputFile], list[str]]:
    """Expand (forced source, file | folder | glob) inputs into files, in a deterministic order.

    Returns the files and a list of warnings. Files of unsupported formats are returned too
    (``fmt="unknown"`` / ``"wat"``) so that ``read_file`` records a reject for each instead of
    dropping them silently. Raises FileNotFoundError for a missing path or an empty glob.
    """
    files: list[InputFile] = []
    warnings: list[str] = []
    seen: set[str] = set()
    for source, spec in inputs:
        if source is not None and source not in SOURCES:
            raise ValueError(f"unknown source {source!r}; expected one of {', '.join(SOURCES)}")
        found: list[InputFile] = []
        if glob.has_magic(spec):
            matches = sorted(glob.glob(spec, recursive=True))
            if not matches:
                raise FileNotFoundError(f"input glob {spec!r} matches no file")
            base = _glob_base(spec)
            prefix = f"{base.resolve().name}/" if base.resolve().name else ""
            for m in matches:
                p = Path(m)
                disp = prefix + Path(os.path.relpath(p, base)).as_posix()
                if p.is_dir():
                    found.extend(_make(q, f"{disp}/{q.relative_to(p).as_posix()}", source, True) for q in _walk(p))
                elif p.is_file():
                    found.append(_make(p, disp, source, True))
        else:
            p = Path(spec)
            if p.is_dir():
                root = p.resolve()
                name = root.name or "input"
                found.extend(_make(q, f"{name}/{q.relative_to(root).as_posix()}", source, True) for q in _walk(root))
                if not found:
                    warnings.append(f"{spec}: folder holds no files")
            elif p.exists():
                found.append(_make(p, p.name, source, False))
            else:
                raise FileNotFoundError(f"input path {spec!r} does not exist")
        for f in found:
            if f.display in seen:
                warnings.append(f"{f.path}: same display path {f.display!r} as an earlier input; skipped")
                continue
            seen.add(f.display)
            if f.fmt == "unknown":
                warnings.append(f"{f.display}: unsupported file type; it will be recorded as rejected")
            elif f.fmt == "wat":
                warnings.append(f"{f.display}: WAT metadata file holds no text; it will be recorded as rejected")
            files.append(f)
    return files, warnings
