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


def test_exported_tokenizer_gives_the_run_tokenizers_ids(tmp_path: Path) -> None:
    """transformers' AutoTokenizer on the export encodes held-out text exactly as the run's sentencepiece model."""
    import polars as pl
    import sentencepiece as spm

    from pipeline.ingest import IngestConfig, discover, read_file
    from pipeline.tokenizer.training import TokenizerConfig, train_tokenizer
    from tests.conftest import REPO

    files, _ = discover([(None, str(REPO / "sample_data" / d)) for d in ("web", "books", "code", "misc")])
    docs = pl.concat([read_file(f, IngestConfig())[0] for f in files], how="diagonal_relaxed")
    train, held = docs[: docs.height // 2], docs[docs.height // 2 :]
    train.write_parquet(tmp_path / "docs.parquet")
    train_tokenizer([tmp_path / "docs.parquet"], tmp_path / "tok", TokenizerConfig(vocab_size=1024))
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=1024, n_layer=1, d_model=32, n_head=2, n_kv_head=1, max_seq_len=16))
    save_checkpoint(model, tmp_path / "ours", TrainConfig(), Manifest(1024, 1, 2, 0, "", {}))
    out = export_hf(tmp_path / "ours", tmp_path / "hf", tokenizer=tmp_path / "tok" / "tokenizer.model")

    sp = spm.SentencePieceProcessor(model_file=str(tmp_path / "tok" / "tokenizer.model"))
    hf = transformers.AutoTokenizer.from_pretrained(out)
    texts = [t[:2000] for t in held["text"].to_list()] + ["The garden", " leading space", "a\n\n  b\tc"]
    assert len(texts) >= 50
    for text in texts:
        assert hf(text, add_special_tokens=False)["input_ids"] == sp.encode(text), text[:80]
    assert hf("The garden")["input_ids"][0] == sp.bos_id()  # BOS added, as the trainer's sequences start


def test_hf_greedy_generation_equals_ours(tmp_path: Path) -> None:
    """Greedy decoding through transformers' generate on the export gives our generate's tokens."""
    from model.generate import GenerationConfig, generate

    torch.set_num_threads(1)
    torch.manual_seed(3)
    cfg = ModelConfig(vocab_size=128, n_layer=2, d_model=64, n_head=4, n_kv_head=2, max_seq_len=64)
    model = Transformer(cfg).eval()
    save_checkpoint(model, tmp_path / "ours", TrainConfig(), Manifest(128, 1, 2, 0, "", {}))
    out = export_hf(tmp_path / "ours", tmp_path / "hf")
    hf = transformers.LlamaForCausalLM.from_pretrained(out, torch_dtype=torch.float32).eval()
    prompt = [1, 17, 42, 99, 5]
    ours = generate(model, prompt, GenerationConfig(max_new_tokens=24, greedy=True))
    with torch.no_grad():
        theirs = hf.generate(
            torch.tensor([prompt]), max_new_tokens=24, do_sample=False, eos_token_id=None, pad_token_id=0
        )[0, len(prompt) :].tolist()
    assert len(ours) == 24 and theirs == ours
