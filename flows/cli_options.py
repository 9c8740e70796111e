"""Command-line options, input parsing and the user-error exit shared by every command, declared once.

Every user error of every command goes through :func:`fail`: one paragraph on stderr and exit status
``EXIT_USAGE`` (2), never a traceback. Input arguments (``--input``, ``--source NAME=PATH``,
``--eval-input NAME=PATH``, a deployment's ``inputs``) are parsed here and nowhere else.

``refinery --help`` imports this module: nothing heavy (Prefect, polars, pydantic models, torch) is imported
at module level; each helper imports what it needs when it is called.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, NoReturn

import typer

EXIT_USAGE = 2  # a user error: bad arguments, recipe, plan, run folder; never a traceback

InputsOption = Annotated[list[str] | None, typer.Option("--input", "-i", help="File, folder or glob (repeatable).")]
SourcesOption = Annotated[list[str] | None, typer.Option("--source", help="NAME=PATH: read PATH with source NAME.")]


class InputError(ValueError):
    """A malformed input argument, with a message meant for the user."""


def fail(message: str) -> NoReturn:
    """Print ``message`` as one paragraph on stderr and exit 2.

    Escaped (a key such as ``[stages]`` is not rich markup); line breaks (a YAML parser's excerpt, a
    pydantic error list) are folded into spaces so the message stays one paragraph."""
    from rich.console import Console
    from rich.markup import escape

    text = " ".join(line.strip() for line in str(message).splitlines() if line.strip())
    Console(stderr=True).print(f"[bold red]error:[/] {escape(text)}")
    raise typer.Exit(EXIT_USAGE)


def error_text(err: Exception, where: str = "") -> str:
    """``err`` as a message for :func:`fail`: a pydantic validation error as ``where.key: problem (got value)``
    items joined by "; " (no links to pydantic's docs), anything else as its own text."""
    from pydantic import ValidationError

    if isinstance(err, ValidationError):
        from flows.recipe import describe_errors

        return "; ".join(describe_errors(err, where))
    return str(err)


def _source_pair(arg: str, prefixed: bool) -> list[str | None]:
    """One input argument as ``[source or None, path]``; ``prefixed``: a known ``NAME=`` prefix is allowed,
    else ``NAME=PATH`` is required."""
    from pipeline.ingest import parse_input_arg

    if not prefixed:
        name, sep, path = arg.partition("=")
        if not (sep and name and path):
            raise InputError(f"--source expects NAME=PATH, got {arg!r}")
    try:
        src, path = parse_input_arg(arg)
    except ValueError as err:
        raise InputError(str(err)) from None
    if src is None and not prefixed:
        raise InputError(f"--source expects NAME=PATH, got {arg!r}")
    return [src, path]


def parse_inputs(
    inputs: Iterable[str] | None = None, sources: Iterable[str] | None = None, *, prefixed_inputs: bool = False
) -> list[list[str | None]]:
    """``--input`` paths and ``--source NAME=PATH`` arguments as ``[source or None, path]`` pairs, in order.

    With ``prefixed_inputs`` an input may also carry a known source prefix (``web=dir``, the form of a
    deployment's ``inputs``); without it an input is a path as given. Raises InputError."""
    pairs: list[list[str | None]] = [_source_pair(a, True) if prefixed_inputs else [None, a] for a in inputs or []]
    pairs += [_source_pair(a, False) for a in sources or []]
    return pairs


def input_pairs(inputs: list[str] | None, sources: list[str] | None) -> list[list[str | None]]:
    """``--input`` and ``--source NAME=PATH`` as [source or None, path] pairs; a malformed one is exit 2."""
    try:
        return parse_inputs(inputs, sources)
    except InputError as err:
        fail(str(err))


def named_pairs(args: list[str] | None, option: str) -> list[list[str]]:
    """``NAME=PATH`` arguments with a free NAME (``--eval-input``) as [name, path] pairs; a malformed one is exit 2."""
    pairs: list[list[str]] = []
    for arg in args or []:
        name, sep, path = arg.partition("=")
        if not (sep and name and path):
            fail(f"{option} expects NAME=PATH, got {arg!r}")
        pairs.append([name, path])
    return pairs


def check_inputs_and_out(
    pairs: list[list[str | None]], out: Path, cache_dir: Path | None, kind: str, extra: Iterable[str] = ()
) -> None:
    """Exit 2, before any work starts, on a missing input path or an empty glob (``pairs`` and the ``extra``
    paths), or on an output folder or cache that a ``kind`` run may not use (nothing is touched)."""
    from flows.run_folder import RunFolderError, check_run_folder
    from pipeline.ingest import discover

    extra = list(extra)
    try:
        discover([(src, str(path)) for src, path in pairs] + [(None, p) for p in extra])
        check_run_folder(out, cache_dir, [str(p) for _, p in pairs] + extra, kind=kind)
    except (FileNotFoundError, ValueError, RunFolderError) as err:
        fail(str(err))


def existing_paths(paths: Iterable[Path], what: str = "input") -> None:
    """Exit 2 unless every path exists."""
    for path in paths:
        if not path.exists():
            fail(f"{what} not found: {path}")


def output_file(path: Path, option: str) -> None:
    """Exit 2 when ``path``, a file the command writes, is a folder or lies under a file."""
    if path.is_dir():
        fail(f"{option} {path} is a folder; give a file name")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                fail(f"{option} {path}: {parent} is a file, not a folder")
            break


class PrefectApi:
    """Prefect's temporary API server, booted in the background by :func:`start_prefect_api`."""

    def __init__(self, boot: bool = False) -> None:
        self.cancelled = threading.Event()
        self.thread: threading.Thread | None = None
        if boot:
            # Not a daemon: a process that exits early waits for it, so the server's atexit stop is registered.
            self.thread = threading.Thread(target=self._boot, name="refinery-prefect-api")
            self.thread.start()

    def _boot(self) -> None:
        from prefect.server.api.server import SubprocessASGIServer

        if self.cancelled.is_set():
            return
        try:
            SubprocessASGIServer().start()  # the instance Prefect's own client finds (one per process)
        except Exception:  # noqa: BLE001 - the first flow starts it again and reports what went wrong
            pass

    def wait(self) -> None:
        """Return once the server answers (or its start failed: the first flow then starts it and says why)."""
        if self.thread is not None:
            self.thread.join()

    def abandon(self) -> None:
        """A user error after the start: stop the server now rather than wait for it to answer first."""
        if self.thread is None:
            return
        from prefect.server.api.server import SubprocessASGIServer

        self.cancelled.set()
        while self.thread.is_alive():
            server = SubprocessASGIServer()
            if server.server_process is not None:
                server.stop()  # the booting thread's health poll then fails at once and returns
            self.thread.join(0.05)


def start_prefect_api() -> PrefectApi:
    """Boot Prefect's temporary API server in the background when no API is configured; call ``wait()`` on
    the result before the first flow, ``abandon()`` when a user error ends the command first. Nothing is
    started where ``PREFECT_API_URL`` is set.

    The server is a subprocess that takes seconds to start; booting it here lets it start while the caller
    still imports and validates (the first flow would start it anyway, then wait for it)."""
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        return PrefectApi()
    import prefect.server.api.server  # noqa: F401  (imported here, so the thread imports nothing)

    return PrefectApi(boot=True)
