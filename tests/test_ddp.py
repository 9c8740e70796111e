"""Distributed data parallel: 2 CPU processes (gloo, via torchrun) follow the single-process curve
on the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from model.config import TrainConfig
from model.train import train
from tests.test_model import FAST, write_shards

ROOT = Path(__file__).resolve().parents[1]


def test_ddp_two_processes_match_single_process(tmp_path: Path) -> None:
    shards = write_shards(tmp_path / "shards", {"train": [40, 40], "val": [20]})
    cfg = {**FAST, "steps": 6, "eval_every": 100, "batch_size": 2}
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "model.train",
        str(shards),
        str(out),
        *(f"{k}={json.dumps(v)}" for k, v in cfg.items()),
    ]
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=150)
    if proc.returncode != 0 and "terminate called without an active exception" in proc.stderr:
        # Gloo's TCP threads can abort a rank while the process group is torn down at exit
        # (seen about once in 50 runs on a loaded 2-core machine), after training has finished.
        # That is not what this test checks, so that one failure gets one fresh attempt.
        retry = tmp_path / "ddp-retry"
        cmd[cmd.index(str(out))] = str(retry)
        out = retry
        proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=150)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = json.loads((out / "metrics.json").read_text())

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = train(shards, tmp_path / "single", TrainConfig(**{**cfg, "batch_size": 4}))
    finally:
        torch.set_num_threads(before)
    assert ddp["tokens_seen"] == single["tokens_seen"] == 6 * 4 * 32
    a, b = [r["loss"] for r in ddp["train"]], [r["loss"] for r in single["train"]]
    assert a == pytest.approx(b, rel=1e-4)
