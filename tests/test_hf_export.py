"""Export to a Hugging Face LlamaForCausalLM folder: transformers loads it and matches our logits."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model.config import ModelConfig, TrainConfig
from model.data import Manifest
from model.hf_export import export_hf
from model.model import Transformer
from model.train import save_checkpoint

transformers = pytest.importorskip("transformers")


@pytest.mark.parametrize(("tied", "n_kv_head"), [(True, 2), (False, 4)])
def test_export_matches_transformers_logits(tmp_path: Path, tied: bool, n_kv_head: int) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = ModelConfig(
        vocab_size=96,
        n_layer=2,
        d_model=64,
        n_head=4,
        n_kv_head=n_kv_head,
        max_seq_len=40,
        tie_embeddings=tied,
        rope_theta=500.0,
    )
    model = Transformer(cfg).eval()
    with torch.no_grad():  # non-trivial norm gains, so a mis-mapped norm would show
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)
    (tmp_path / "tokenizer.model").write_bytes(b"placeholder")
    save_checkpoint(model, tmp_path / "ours", TrainConfig(), Manifest(96, 1, 2, 0, "", {}))
    out = export_hf(tmp_path / "ours", tmp_path / "hf", tokenizer=tmp_path / "tokenizer.model")
    assert {"config.json", "model.safetensors", "tokenizer.model", "tokenizer_config.json"} <= {
        p.name for p in out.iterdir()
    }

    hf = transformers.LlamaForCausalLM.from_pretrained(out, torch_dtype=torch.float32).eval()
    assert hf.config.tie_word_embeddings == tied
    assert sum(p.numel() for p in hf.parameters()) == model.num_parameters()
    idx = torch.randint(0, 96, (2, 40))
    with torch.no_grad():
        ours = model(idx)[0]
        theirs = hf(input_ids=idx).logits
    torch.testing.assert_close(theirs, ours, atol=1e-4, rtol=0)
