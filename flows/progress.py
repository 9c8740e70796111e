"""Progress hooks: the flow reports stage progress here, the CLI installs a rich display; training adds its loss line
and a Prefect progress artifact."""

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


def training_line(record: dict[str, Any]) -> str:
    """A training step as one progress line: loss and throughput."""
    return f"train: loss {record['loss']:.3f}, {record.get('tokens_per_s', 0):,.0f} tok/s"


class TrainingProgress:
    """Training's progress as a Prefect progress artifact (percent done, loss, tokens/s), updated about 20
    times a run; nothing outside a Prefect task run, and a failed update never stops training."""

    def __init__(self, steps: int) -> None:
        self.steps, self.every, self.id = steps, max(1, steps // 20), None
        try:
            from prefect.artifacts import create_progress_artifact
            from prefect.context import TaskRunContext

            if TaskRunContext.get() is not None:
                self.id = create_progress_artifact(progress=0.0, description="training: starting")
        except Exception:  # noqa: BLE001 - the UI view is optional; the run's files are the record
            self.id = None

    def update(self, record: dict[str, Any]) -> None:
        step = int(record["step"])
        if self.id is None or (step % self.every and step != self.steps):
            return
        try:
            from prefect.artifacts import update_progress_artifact

            update_progress_artifact(self.id, progress=100.0 * step / self.steps, description=training_line(record))
        except Exception:  # noqa: BLE001 - as above
            self.id = None
