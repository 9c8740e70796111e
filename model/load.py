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
    state = _fuse_legacy(load_file(run_dir / "model.safetensors"))
    if cfg.tie_embeddings:
        # Saved once; both names point at the same parameter, so loading it twice is harmless.
        state["lm_head.weight"] = state["tok_emb.weight"]
    model.load_state_dict(state, strict=True)
    return model.to(device).eval(), cfg


def _fuse_legacy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Checkpoints from before q/k/v and gate/up were fused hold them as separate matrices."""
    for key in [k for k in state if k.endswith("attn.wq.weight")]:
        p = key[: -len("wq.weight")]
        state[p + "wqkv.weight"] = torch.cat([state.pop(p + n) for n in ("wq.weight", "wk.weight", "wv.weight")])
    for key in [k for k in state if k.endswith("ffn.w_gate.weight")]:
        p = key[: -len("w_gate.weight")]
        state[p + "w_gate_up.weight"] = torch.cat([state.pop(p + "w_gate.weight"), state.pop(p + "w_up.weight")])
    return state
