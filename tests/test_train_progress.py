"""Training shows its loss and throughput while it runs, not only a step counter."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows import progress as progress_mod
from flows import tasks
from model.config import TrainConfig
from tests.test_model import write_shards

pytestmark = pytest.mark.usefixtures("one_thread")


class Recorder(progress_mod.Progress):
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.advanced = 0

    def advance(self, stage: str, n: int = 1) -> None:
        self.advanced += n

    def describe(self, stage: str, text: str) -> None:
        self.lines.append(text)


def test_training_reports_loss_and_tokens_per_second_each_step(tmp_path: Path) -> None:
    shards = write_shards(tmp_path / "shards", {"train": [40], "val": [10]})
    params = TrainConfig(steps=4, batch_size=2, seq_len=16, eval_every=4, eval_batches=1, threads=1)
    recorder = Recorder()
    progress_mod.set_progress(recorder)
    try:
        ref = tasks.train_task.fn(params.model_dump(mode="json"), str(shards), ["k"], str(tmp_path / "cache"))
    finally:
        progress_mod.set_progress(progress_mod.Progress())
    assert ref["stats"]["final_val_loss"] is not None
    assert recorder.advanced == 4 and len(recorder.lines) == 4
    for line in recorder.lines:
        assert line.startswith("train: loss ") and line.endswith(" tok/s")
        float(line.split("loss ")[1].split(",")[0])  # a number
