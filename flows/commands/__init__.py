"""CLI commands beyond `run`, one topic per module.

Each module here defines ``register(app: typer.Typer) -> None``; ``flows.cli`` calls it for every
module in this package, so a topic adds commands without editing the main CLI file. A module imports
only typer and rich at module level (``refinery --help`` imports all of them); heavy libraries are
imported inside the command functions.
"""

from __future__ import annotations

import importlib
import pkgutil

import typer


def register_all(app: typer.Typer) -> None:
    """Add every command module's commands to ``app``, in module-name order."""
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.register(app)
