"""Load a trained model from ``model.safetensors`` + ``config.json`` (no pickles anywhere)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from model.config import ModelConfig
from model.model import Transformer


def load_model(run_dir: Path, device: str | torch.device = "cpu") -> tuple[Transformer, ModelConfig]:
    """Rebuild the model written by ``model.train.train``; returned in eval mode."""
    run_dir = Path(run_dir)
    cfg = ModelConfig(**json.loads((run_dir / "config.json").read_text())["model"])
    model = Transformer(cfg)
    state = load_file(run_dir / "model.safetensors")
    if cfg.tie_embeddings:
        # Saved once; both names point at the same parameter, so loading it twice is harmless.
        state["lm_head.weight"] = state["tok_emb.weight"]
    model.load_state_dict(state, strict=True)
    return model.to(device).eval(), cfg
