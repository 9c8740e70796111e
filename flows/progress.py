"""Progress hooks: the flow reports stage progress here; the CLI installs a rich display."""

from __future__ import annotations


class Progress:
    """No-op progress sink (the default when a flow runs outside the CLI)."""

    def start(self, stage: str, total: int) -> None: ...

    def advance(self, stage: str, n: int = 1) -> None: ...

    def finish(self, stage: str, summary: dict) -> None: ...


_current: Progress = Progress()


def set_progress(progress: Progress) -> None:
    global _current
    _current = progress


def progress() -> Progress:
    return _current
