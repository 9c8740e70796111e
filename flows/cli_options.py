"""Command-line options shared by several commands (`run`, `ablate`), declared once."""

from __future__ import annotations

from typing import Annotated

import typer

InputsOption = Annotated[list[str] | None, typer.Option("--input", "-i", help="File, folder or glob (repeatable).")]
SourcesOption = Annotated[list[str] | None, typer.Option("--source", help="NAME=PATH: read PATH with source NAME.")]
