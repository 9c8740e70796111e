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


def test_cli_export_never_overwrites_the_users_files_and_reexports_in_place(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    cfg = ModelConfig(vocab_size=96, n_layer=1, d_model=32, n_head=2, n_kv_head=2, max_seq_len=16)
    save_checkpoint(Transformer(cfg), tmp_path / "ours", TrainConfig(), Manifest(96, 1, 2, 0, "", {}))
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text("the user's own config")
    result = CliRunner().invoke(app, ["export-hf", "--model", str(tmp_path / "ours"), "--out", str(mine)])
    assert result.exit_code == 2 and "not written by Refinery" in " ".join(result.output.split())
    assert (mine / "config.json").read_text() == "the user's own config"
    assert [p.name for p in mine.iterdir()] == ["config.json"]

    out = tmp_path / "hf"
    for _ in range(2):  # a second export replaces the first one's files
        result = CliRunner().invoke(app, ["export-hf", "--model", str(tmp_path / "ours"), "--out", str(out)])
        assert result.exit_code == 0, result.output
    assert {"config.json", "model.safetensors"} <= {p.name for p in out.iterdir()}
