"""Progress hooks: the flow reports stage progress here; the CLI installs a rich display."""

from __future__ import annotations

from typing import Any


class Progress:
    """No-op progress sink (the default when a flow runs outside the CLI)."""

    def start(self, stage: str, total: int) -> None: ...

    def advance(self, stage: str, n: int = 1) -> None: ...

    def describe(self, stage: str, text: str) -> None:
        """Show ``text`` as the stage's line while it runs (training: loss and tokens/s)."""

    def finish(self, stage: str, summary: dict[str, Any]) -> None: ...


_current: Progress = Progress()


def set_progress(progress: Progress) -> None:
    """Send the progress of the flows run from now on in this process to ``progress``."""
    global _current
    _current = progress


def progress() -> Progress:
    """The progress sink in use."""
    return _current
