"""Trainer features beyond the basic loop: exact resume, bits per byte, FLOPs accounting."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from model.config import ModelConfig, TrainConfig
from model.data import load_split, read_manifest, source_bytes
from model.train import flops_per_token, train
from tests.test_model import FAST, write_shards

pytestmark = pytest.mark.usefixtures("one_thread")


class Crash(Exception):
    pass


def test_resume_matches_uninterrupted_run(tmp_path: Path) -> None:
    shards = write_shards(tmp_path / "shards", {"train": [40, 40], "val": [20]})
    cfg = {**FAST, "checkpoint_every": 4}
    full = train(shards, tmp_path / "full", TrainConfig(**cfg))

    def crash_at_step_7(record: dict) -> None:
        if record.get("kind") == "train" and record["step"] == 7:
            raise Crash

    with pytest.raises(Crash):
        train(shards, tmp_path / "cut", TrainConfig(**cfg), log=crash_at_step_7)
    state = json.loads((tmp_path / "cut" / "checkpoint" / "state.json").read_text())
    assert state["step"] == 4 and (tmp_path / "cut" / "checkpoint" / "optimizer.safetensors").is_file()
    seen: list[int] = []
    resumed = train(
        shards,
        tmp_path / "cut",
        TrainConfig(**cfg, resume=True),
        log=lambda r: seen.append(r["step"]) if r.get("kind") == "train" else None,
    )
    assert seen == list(range(5, 13))  # only the steps after the checkpoint ran again
    assert [r["loss"] for r in resumed["train"]] == [r["loss"] for r in full["train"]]
    assert [r["lr"] for r in resumed["train"]] == [r["lr"] for r in full["train"]]
    assert [v["loss"] for v in resumed["val"]] == [v["loss"] for v in full["val"]]
    assert resumed["final_val_loss"] == full["final_val_loss"]


def test_bits_per_byte_per_source(tmp_path: Path) -> None:
    shards = write_shards(tmp_path / "shards", {"train": [40], "val": [20]}, n_bytes=True)
    manifest = read_manifest(shards)
    split = load_split(shards, "val", manifest)
    bpt = source_bytes(shards, "val", manifest, split)
    assert bpt is not None and set(bpt) == {"web", "code"}
    for source, stream in split.by_source().items():
        n_docs = int((stream == manifest.bos_id).sum())
        # 3 bytes per document token; bos/eos are tokens of zero bytes.
        assert bpt[source] == pytest.approx(3 * (len(stream) - 2 * n_docs) / len(stream))
    m = train(shards, tmp_path / "out", TrainConfig(**{**FAST, "steps": 3}))
    for source, loss in m["final_val_per_source"].items():
        assert m["final_val_per_source_bpb"][source] == pytest.approx(loss / math.log(2) / bpt[source])
    assert (
        min(m["final_val_per_source_bpb"].values()) <= m["final_val_bpb"] <= max(m["final_val_per_source_bpb"].values())
    )
    assert m["val"][-1]["per_source_ppl"]["web"] == pytest.approx(math.exp(m["final_val_per_source"]["web"]))


def test_no_bytes_no_bpb(tmp_path: Path) -> None:
    shards = write_shards(tmp_path / "shards", {"train": [40], "val": [20]})  # no n_bytes, no tokenizer file
    m = train(shards, tmp_path / "out", TrainConfig(**{**FAST, "steps": 2, "warmup_steps": 0}))
    assert "final_val_bpb" not in m and "bpb" not in m["val"][-1]


def test_flops_per_token_counts_every_matmul() -> None:
    cfg = ModelConfig(vocab_size=100, n_layer=2, d_model=64, n_head=4, n_kv_head=2, ffn_hidden=96)
    from model.model import Transformer

    model = Transformer(cfg)
    matmul_params = sum(p.numel() for n, p in model.named_parameters() if p.dim() == 2 and "tok_emb" not in n)
    matmul_params += 0 if not cfg.tie_embeddings else model.lm_head.weight.numel()
    assert flops_per_token(cfg, 32) == 6 * matmul_params + 12 * 2 * 64 * 32


def test_untied_and_compile_flags_reach_the_model(tmp_path: Path) -> None:
    shards = write_shards(tmp_path / "shards", {"train": [40], "val": [20]})
    m = train(shards, tmp_path / "out", TrainConfig(**{**FAST, "steps": 2, "warmup_steps": 0, "tie_embeddings": False}))
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["model"]["tie_embeddings"] is False and m["params"] > 0
