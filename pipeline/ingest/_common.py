"""Helpers shared by the readers: output collection (``Sink``) and opening input files safely."""

from __future__ import annotations

import json
import os
import stat
from typing import IO, Any

import polars as pl

from pipeline.ids import doc_id
from pipeline.schema import DOC_SCHEMA, REJECTED_SCHEMA
from pipeline.urls import normalize_url, registered_domain

from .config import IngestConfig, InputFile

STAGE = "ingest"


def dumps_meta(meta: dict[str, Any]) -> str:
    """Stable JSON for the ``meta`` column (sorted keys; non-JSON values such as dates as strings)."""
    return json.dumps(meta, sort_keys=True, ensure_ascii=False, default=str)


class Sink:
    """Collects documents and rejects of one file as column lists; builds each DataFrame once."""

    def __init__(self, f: InputFile, cfg: IngestConfig, default_source: str) -> None:
        self.f = f
        self.cfg = cfg
        self.source = f.source or default_source
        self.docs: dict[str, list[Any]] = {k: [] for k in DOC_SCHEMA}
        self.rej: dict[str, list[Any]] = {k: [] for k in ("id", "source", "url", "path", "reason", "text")}
        self._text_left = cfg.max_file_text_mb << 20  # characters still allowed (max_file_text_mb)
        self.full = False  # set once a document did not fit in ``max_file_text_mb``

    def full_reason(self) -> str:
        return f"file text over max_file_text_mb={self.cfg.max_file_text_mb}"

    def rest_not_read(self, locator: str | int | None) -> None:
        """One reject standing for the records after ``max_file_text_mb`` was reached: they are not
        read, so a decompression bomb costs neither memory nor (much) time."""
        self.reject(locator, f"not read: {self.full_reason()}; rest of file skipped")

    def _where(self, locator: str | int | None) -> tuple[str, str]:
        path = self.f.display if locator is None else f"{self.f.display}#{locator}"
        return doc_id(self.f.display, locator), path

    def doc(
        self,
        locator: str | int | None,
        text: str,
        *,
        url: str | None = None,
        meta: dict[str, Any] | None = None,
        source: str | None = None,
        group_id: str | None = None,
    ) -> str | None:
        """Add a document (returns its id), or an ``empty`` reject when it is shorter than ``min_chars``.

        ``url`` is stored normalised (the original goes to ``meta.url_raw`` when it differs) with
        its registered domain; ``group_id`` defaults to the document's own id.
        """
        src = self.f.source or source or self.source
        if len(text.strip()) < self.cfg.min_chars or not text:
            self.reject(locator, "empty", url=url, source=src)
            return None
        if self.full or len(text) > self._text_left:
            self.full = True  # readers stop here: see ``rest_not_read``
            self.reject(locator, self.full_reason(), url=url, source=src)
            return None
        meta = dict(meta or {})
        norm = normalize_url(url) or url
        if url and norm != url:
            meta["url_raw"] = url
        try:
            meta_json = dumps_meta(meta)
        except RecursionError:  # a value nested past the recursion limit: this record only, not the file
            self.reject(locator, "meta nested too deeply", url=url, source=src)
            return None
        self._text_left -= len(text)
        did, path = self._where(locator)
        d = self.docs
        d["id"].append(did)
        d["text"].append(text)
        d["source"].append(src)
        d["url"].append(norm)
        d["path"].append(path)
        d["meta"].append(meta_json)
        d["group_id"].append(group_id or did)
        d["domain"].append(registered_domain(norm))
        return did

    def reject(
        self,
        locator: str | int | None,
        reason: str,
        *,
        url: str | None = None,
        text: str | None = None,
        source: str | None = None,
    ) -> None:
        did, path = self._where(locator)
        r = self.rej
        r["id"].append(did)
        r["source"].append(self.f.source or source or self.source)
        r["url"].append(normalize_url(url) or url)
        r["path"].append(path)
        r["reason"].append(reason)
        r["text"].append(text)

    def frames(self) -> tuple[pl.DataFrame, pl.DataFrame]:
        docs = pl.DataFrame(self.docs, schema=DOC_SCHEMA)
        rej = pl.DataFrame(self.rej, schema={k: REJECTED_SCHEMA[k] for k in self.rej})
        rej = rej.with_columns(pl.lit(STAGE).alias("stage"))
        rej = rej.select(
            [pl.col(k) if k in rej.columns else pl.lit(None, dtype=t).alias(k) for k, t in REJECTED_SCHEMA.items()]
        )
        return docs, rej


def file_reject(f: InputFile, cfg: IngestConfig, reason: str, default_source: str = "other"):
    """Frames holding a single file-level reject."""
    sink = Sink(f, cfg, default_source)
    sink.reject(part_locator(f), reason)
    return sink.frames()


def part_locator(f: InputFile) -> str | None:
    """The locator of a reject about a whole part of a cut file (None for a whole file): each part's
    file-level reject gets its own id."""
    if f.part is None:
        return None
    unit = "row groups" if f.fmt == "parquet" else "bytes"
    return f"{unit} {f.part[0]}-{f.part[1]}"


# --- opening files, size limits ----------------------------------------------------------


class NotRegularFileError(OSError):
    """The path is a FIFO, socket, device or folder: never read from it (a FIFO would block)."""


def file_kind(mode: int) -> str:
    """Readable name of a file type (``stat.S_IFMT`` of ``mode``)."""
    for test, name in (
        (stat.S_ISREG, "regular file"), (stat.S_ISDIR, "folder"), (stat.S_ISFIFO, "fifo"),
        (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
        (stat.S_ISLNK, "symlink"),
    ):  # fmt: skip
        if test(mode):
            return name
    return "special file"


def open_input(f: InputFile) -> IO[bytes]:
    """Open an input file for reading, refusing anything but a regular file (see ``open_regular``)."""
    return open_regular(f.path)


def open_regular(path: str | os.PathLike[str]) -> IO[bytes]:
    """Open a regular file for reading; NotRegularFileError for anything else.

    Opened non-blocking and checked with ``fstat`` on the open descriptor, so a path swapped for a
    FIFO after it was listed can neither block the open nor be read.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFileError(f"not a regular file: {file_kind(mode)}")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def os_reason(e: OSError) -> str:
    """``"PermissionError: Permission denied"``: the error without the (possibly odd) file name."""
    if isinstance(e, NotRegularFileError):
        return str(e)
    return f"{type(e).__name__}: {e.strerror or e}"
