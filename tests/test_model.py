"""The compact trainer: model shapes/causality, data streams, train() outputs, determinism."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import load_file

from model.config import ModelConfig, TrainConfig
from model.data import BatchSampler, eval_batches, load_split, read_manifest
from model.load import load_model
from model.model import Transformer
from model.train import lr_at, save_checkpoint, train

VOCAB, BOS, EOS, PAD = 64, 1, 2, 0

pytestmark = pytest.mark.usefixtures("one_thread")


def write_shards(root: Path, docs_per_split: dict[str, list[int]], seed: int = 0, n_bytes: bool = False) -> Path:
    """Token shards like pipeline/shards.py writes: ``{split}-NNNNN.parquet`` + manifest.json.

    ``docs_per_split`` maps split -> document counts per file; sources alternate web/code and
    the two sources draw from different token ranges so they have different losses. With
    ``n_bytes``, each document also gets an ``n_bytes`` column of 3 bytes per token.
    """
    rng = np.random.default_rng(seed)
    list_types = (pa.list_(pa.uint16()), pa.large_list(pa.uint32()))
    root.mkdir(parents=True, exist_ok=True)
    splits = {}
    for split, per_file in docs_per_split.items():
        n_tok = 0
        for i, n_docs in enumerate(per_file):
            ids, sources, tokens = [], [], []
            for d in range(n_docs):
                source = ("web", "code")[d % 2]
                lo, hi = (3, 40) if source == "web" else (30, VOCAB)
                doc = rng.integers(lo, hi, size=int(rng.integers(5, 60))).astype(np.uint16)
                ids.append(f"{split}-{i}-{d}")
                sources.append(source)
                tokens.append(doc)
                n_tok += len(doc)
            table = pa.table(
                {
                    "id": pa.array(ids, pa.string()),
                    "source": pa.array(sources, pa.string()),
                    "n_tokens": pa.array([len(t) for t in tokens], pa.int32()),
                    # pipeline/shards.py writes large_list; exercise both list layouts and widths.
                    "tokens": pa.array([t.tolist() for t in tokens], list_types[i % 2]),
                }
            )
            if n_bytes:
                table = table.append_column("n_bytes", pa.array([3 * len(t) for t in tokens], pa.int64()))
            pq.write_table(table, root / f"{split}-{i:05d}.parquet")
        splits[split] = {"files": len(per_file), "docs": sum(per_file), "tokens": n_tok}
    manifest = {
        "vocab_size": VOCAB,
        "bos_id": BOS,
        "eos_id": EOS,
        "pad_id": PAD,
        "tokenizer": "test",
        "splits": splits,
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


@pytest.fixture
def shards(tmp_path: Path) -> Path:
    return write_shards(tmp_path / "shards", {"train": [40, 40], "val": [20]})


def tiny_cfg(**kw) -> ModelConfig:
    return ModelConfig(
        **{"vocab_size": VOCAB, "n_layer": 2, "d_model": 64, "n_head": 4, "n_kv_head": 2, "max_seq_len": 32, **kw}
    )


FAST = dict(steps=12, batch_size=4, seq_len=32, warmup_steps=3, eval_every=5, eval_batches=2, threads=1)


# --- model -----------------------------------------------------------------------------------


@pytest.mark.parametrize("n_kv_head", [4, 2, 1])
def test_forward_shapes_and_gqa(n_kv_head: int) -> None:
    torch.manual_seed(0)
    model = Transformer(tiny_cfg(n_kv_head=n_kv_head))
    idx = torch.randint(0, VOCAB, (3, 17))
    targets = torch.randint(0, VOCAB, (3, 17))
    logits, _ = model(idx)
    assert logits is not None and logits.shape == (3, 17, VOCAB)
    # With targets the loss comes from the chunked projection + cross-entropy, never the logits.
    no_logits, loss = model(idx, targets)
    assert no_logits is None and loss is not None and loss.ndim == 0
    expected = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-5)
    # Small init: the untrained model is close to uniform over the vocabulary.
    assert abs(loss.item() - np.log(VOCAB)) < 0.5
    assert model.blocks[0].attn.wqkv.weight.shape == ((4 + 2 * n_kv_head) * 16, 64)


def test_causal_masking() -> None:
    torch.manual_seed(0)
    model = Transformer(tiny_cfg()).eval()
    idx = torch.randint(0, VOCAB, (2, 20))
    changed = idx.clone()
    changed[:, 12] = (changed[:, 12] + 1) % VOCAB
    with torch.no_grad():
        a, _ = model(idx)
        b, _ = model(changed)
    torch.testing.assert_close(a[:, :12], b[:, :12], rtol=0, atol=0)
    assert not torch.allclose(a[:, 12:], b[:, 12:])


def test_config_validation_and_presets() -> None:
    assert ModelConfig(vocab_size=10, d_model=128).ffn_hidden == 352  # 8/3*128 rounded up to 32
    with pytest.raises(ValueError, match="must divide"):
        ModelConfig(vocab_size=10, n_head=4, n_kv_head=3)
    with pytest.raises(ValueError):
        TrainConfig(preset="huge")
    with pytest.raises(ValueError):
        TrainConfig(unknown_knob=1)
    counts = {}
    for name in ("nano", "micro", "small", "base"):
        cfg = ModelConfig.from_preset(name, vocab_size=32000)
        with torch.device("meta"):  # count parameters without allocating base's 110M
            counts[name] = Transformer(cfg).num_parameters(exclude_embeddings=True)
    assert counts["nano"] < counts["micro"] < counts["small"] < counts["base"]
    assert 80e6 < counts["base"] + 32000 * 768 < 140e6


def test_tied_and_untied_embeddings() -> None:
    tied, untied = Transformer(tiny_cfg()), Transformer(tiny_cfg(tie_embeddings=False))
    assert tied.lm_head.weight is tied.tok_emb.weight
    assert untied.num_parameters() - tied.num_parameters() == VOCAB * 64
    assert tied.num_parameters(exclude_embeddings=True) == untied.num_parameters(exclude_embeddings=True)


def test_overfits_one_batch() -> None:
    torch.manual_seed(0)
    model = Transformer(ModelConfig.from_preset("nano", vocab_size=VOCAB, max_seq_len=32))
    x = torch.randint(0, VOCAB, (4, 33))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    for _ in range(150):
        _, loss = model(x[:, :-1], x[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1


# --- data ------------------------------------------------------------------------------------


def test_stream_layout(shards: Path) -> None:
    manifest = read_manifest(shards)
    split = load_split(shards, "train", manifest)
    assert split.sources == ("code", "web")
    assert split.n_docs == 80
    tables = [pq.read_table(shards / f"train-0000{i}.parquet") for i in (0, 1)]
    expected = [t for tab in tables for doc in tab.column("tokens").to_pylist() for t in [BOS, *doc, EOS]]
    assert split.tokens.tolist() == expected
    per_source = split.by_source()
    assert sum(len(s) for s in per_source.values()) == len(split.tokens)
    web = per_source["web"]
    assert web[0] == BOS and web[-1] == EOS and (web == BOS).sum() == 40


def test_sampler_is_seeded(shards: Path) -> None:
    stream = load_split(shards, "train", read_manifest(shards)).tokens
    a, b, c = (BatchSampler(stream, 4, 16, seed=s) for s in (0, 0, 1))
    xa, ya = a.next()
    xb, _ = b.next()
    xc, _ = c.next()
    assert xa.shape == ya.shape == (4, 16) and xa.dtype == torch.long
    assert torch.equal(xa[:, 1:], ya[:, :-1])
    assert torch.equal(xa, xb) and not torch.equal(xa, xc)


def test_eval_windows_cover_each_target_once() -> None:
    stream = np.arange(1, 42, dtype=np.int32)  # 41 tokens -> 5 windows of 8 targets
    batches = list(eval_batches(stream, batch_size=2, seq_len=8, max_batches=10))
    ys = torch.cat([y for _, y in batches]).flatten().tolist()
    assert ys == list(range(2, 42))
    short = list(eval_batches(np.arange(5, dtype=np.int32), batch_size=2, seq_len=8, max_batches=10))
    assert len(short) == 1 and short[0][1].shape == (1, 4)


def test_too_little_data_is_a_clear_error(tmp_path: Path) -> None:
    shards = write_shards(tmp_path / "s", {"train": [1], "val": [1]})
    n = len(load_split(shards, "train", read_manifest(shards)).tokens)
    with pytest.raises(ValueError, match="lower seq_len"):
        train(shards, tmp_path / "out", TrainConfig(**{**FAST, "seq_len": n + 10}))
    with pytest.raises(ValueError, match="no val"):
        empty = write_shards(tmp_path / "t", {"train": [4]})
        train(empty, tmp_path / "out", TrainConfig(**FAST))


# --- train -----------------------------------------------------------------------------------


def test_lr_schedule() -> None:
    cfg = TrainConfig(steps=100, warmup_steps=10, lr=1.0, min_lr_ratio=0.1)
    lrs = [lr_at(s, cfg) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[-1] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:], strict=False))


def test_train_writes_outputs_and_is_deterministic(shards: Path, tmp_path: Path) -> None:
    records: list[dict] = []
    m1 = train(shards, tmp_path / "run1", TrainConfig(**FAST), log=records.append)
    for name in ("model.safetensors", "config.json", "metrics.json"):
        assert (tmp_path / "run1" / name).is_file()
    assert not list((tmp_path / "run1").glob(".*tmp"))
    assert set(m1) >= {"params", "train", "val", "final_val_loss", "final_val_per_source", "tokens_seen", "seconds"}
    assert json.loads((tmp_path / "run1" / "metrics.json").read_text())["final_val_loss"] == m1["final_val_loss"]
    assert len(m1["train"]) == 12 and set(m1["train"][0]) == {"step", "loss", "lr", "tokens_per_s"}
    assert [v["step"] for v in m1["val"]] == [5, 10, 12]
    assert set(m1["final_val_per_source"]) == {"web", "code"}
    assert m1["tokens_seen"] == 12 * 4 * 32
    assert m1["train"][-1]["loss"] < m1["train"][0]["loss"]
    assert [r["kind"] for r in records].count("val") == 3
    config = json.loads((tmp_path / "run1" / "config.json").read_text())
    assert config["vocab"]["vocab_size"] == VOCAB and config["train"]["seed"] == 0
    assert "lm_head.weight" not in load_file(tmp_path / "run1" / "model.safetensors")  # tied: saved once

    m2 = train(shards, tmp_path / "run2", TrainConfig(**FAST))
    m3 = train(shards, tmp_path / "run3", TrainConfig(**{**FAST, "seed": 1}))
    losses = [[r["loss"] for r in m["train"]] for m in (m1, m2, m3)]
    assert losses[0] == losses[1]
    assert losses[0] != losses[2]
    assert m1["final_val_loss"] == m2["final_val_loss"]

    model, cfg = load_model(tmp_path / "run1")
    model2, _ = load_model(tmp_path / "run2")
    assert cfg.vocab_size == VOCAB and not model.training
    idx = torch.randint(0, VOCAB, (2, 32))
    with torch.no_grad():
        assert torch.equal(model(idx)[0], model2(idx)[0])  # same seed -> same weights


def test_grad_accum(shards: Path, tmp_path: Path) -> None:
    m = train(shards, tmp_path / "acc", TrainConfig(**{**FAST, "steps": 4, "grad_accum": 2}))
    assert m["tokens_seen"] == 4 * 2 * 4 * 32 and len(m["train"]) == 4


@pytest.mark.parametrize("tied", [True, False])
def test_save_load_round_trip(shards: Path, tmp_path: Path, tied: bool) -> None:
    torch.manual_seed(0)
    model = Transformer(tiny_cfg(tie_embeddings=tied)).eval()
    save_checkpoint(model, tmp_path, TrainConfig(), read_manifest(shards))
    loaded, cfg = load_model(tmp_path)
    assert cfg == model.cfg
    assert (loaded.lm_head.weight is loaded.tok_emb.weight) == tied
    idx = torch.randint(0, VOCAB, (2, 32))
    with torch.no_grad():
        assert torch.equal(model(idx)[0], loaded(idx)[0])


def test_loads_checkpoints_with_unfused_projections(shards: Path, tmp_path: Path) -> None:
    """Model folders written before q/k/v and gate/up were fused still load."""
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = Transformer(tiny_cfg()).eval()
    save_checkpoint(model, tmp_path, TrainConfig(), read_manifest(shards))
    state = load_file(tmp_path / "model.safetensors")
    for i in range(2):
        p = f"blocks.{i}."
        q, k, v = state.pop(p + "attn.wqkv.weight").split([64, 32, 32])
        gate, up = state.pop(p + "ffn.w_gate_up.weight").chunk(2)
        state |= {p + "attn.wq.weight": q, p + "attn.wk.weight": k, p + "attn.wv.weight": v}
        state |= {p + "ffn.w_gate.weight": gate.contiguous(), p + "ffn.w_up.weight": up.contiguous()}
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "model.safetensors")
    loaded, _ = load_model(tmp_path)
    idx = torch.randint(0, VOCAB, (2, 32))
    with torch.no_grad():
        assert torch.equal(model(idx)[0], loaded(idx)[0])
