"""Command-line options and the user-error exit shared by every command, declared once."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

EXIT_USAGE = 2  # a user error: bad arguments, recipe, run folder; never a traceback

InputsOption = Annotated[list[str] | None, typer.Option("--input", "-i", help="File, folder or glob (repeatable).")]
SourcesOption = Annotated[list[str] | None, typer.Option("--source", help="NAME=PATH: read PATH with source NAME.")]


def fail(message: str) -> None:
    """Print ``message`` as an error (escaped: a key such as ``[stages]`` is not rich markup) and exit 2."""
    Console(stderr=True).print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(EXIT_USAGE)


def input_pairs(inputs: list[str] | None, sources: list[str] | None) -> list[list[str | None]]:
    """``--input`` and ``--source NAME=PATH`` as [source or None, path] pairs; a malformed one is exit 2."""
    from pipeline.ingest import parse_input_arg

    pairs: list[list[str | None]] = [[None, p] for p in inputs or []]
    for arg in sources or []:
        try:
            src, path = parse_input_arg(arg)
        except ValueError as err:
            fail(str(err))
        if src is None:
            fail(f"--source expects NAME=PATH, got {arg!r}")
        pairs.append([src, path])
    return pairs
