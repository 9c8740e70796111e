"""Export a trained model folder to a Hugging Face ``LlamaForCausalLM`` folder.

Our blocks are LLaMA's, so the export is a renaming plus two splits (our fused q/k/v and
gate/up matrices). Rotary embeddings use the same rotate-half layout as HF's Llama, so no
permutation is needed. Writes ``config.json``, ``model.safetensors``, ``generation_config.json``
and, when the model folder has one, the sentencepiece ``tokenizer.model`` with a
``tokenizer_config.json``. Needs only torch and safetensors (transformers is not imported).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

from model.load import load_model


def hf_state_dict(model) -> dict[str, torch.Tensor]:
    cfg = model.cfg
    q_dim, kv_dim = cfg.n_head * cfg.head_dim, cfg.n_kv_head * cfg.head_dim
    sd: dict[str, torch.Tensor] = {"model.embed_tokens.weight": model.tok_emb.weight}
    for i, block in enumerate(model.blocks):
        p = f"model.layers.{i}."
        q, k, v = block.attn.wqkv.weight.split([q_dim, kv_dim, kv_dim], dim=0)
        gate, up = block.ffn.w_gate_up.weight.split(block.ffn.hidden, dim=0)
        sd |= {
            p + "input_layernorm.weight": block.attn_norm.weight,
            p + "self_attn.q_proj.weight": q,
            p + "self_attn.k_proj.weight": k,
            p + "self_attn.v_proj.weight": v,
            p + "self_attn.o_proj.weight": block.attn.wo.weight,
            p + "post_attention_layernorm.weight": block.ffn_norm.weight,
            p + "mlp.gate_proj.weight": gate,
            p + "mlp.up_proj.weight": up,
            p + "mlp.down_proj.weight": block.ffn.w_down.weight,
        }
    sd["model.norm.weight"] = model.norm.weight
    if not cfg.tie_embeddings:
        sd["lm_head.weight"] = model.lm_head.weight
    return {k: v.detach().float().cpu().contiguous() for k, v in sd.items()}


def export_hf(model_dir: Path, out_dir: Path, tokenizer: Path | None = None) -> Path:
    """Write the HF folder for the model in ``model_dir`` (as written by ``model.train.train``);
    ``tokenizer`` defaults to ``model_dir/tokenizer.model`` when present."""
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    model, cfg = load_model(model_dir)
    vocab = json.loads((model_dir / "config.json").read_text()).get("vocab", {})
    out_dir.mkdir(parents=True, exist_ok=True)
    special = {f"{k}_token_id": vocab.get(f"{k}_id") for k in ("bos", "eos", "pad")}
    hf_config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.d_model,
        "intermediate_size": cfg.ffn_hidden,
        "num_hidden_layers": cfg.n_layer,
        "num_attention_heads": cfg.n_head,
        "num_key_value_heads": cfg.n_kv_head,
        "head_dim": cfg.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": cfg.max_seq_len,
        "rms_norm_eps": cfg.norm_eps,
        "rope_theta": cfg.rope_theta,  # transformers < 5
        "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta},  # transformers >= 5
        "attention_bias": False,
        "mlp_bias": False,
        "tie_word_embeddings": cfg.tie_embeddings,
        "torch_dtype": "float32",
        "use_cache": True,
        **special,
    }
    (out_dir / "config.json").write_text(json.dumps(hf_config, indent=2) + "\n")
    (out_dir / "generation_config.json").write_text(json.dumps(special, indent=2) + "\n")
    save_file(hf_state_dict(model), out_dir / "model.safetensors", metadata={"format": "pt"})
    tokenizer = tokenizer or model_dir / "tokenizer.model"
    if tokenizer.is_file():
        shutil.copyfile(tokenizer, out_dir / "tokenizer.model")
        tok_cfg = {
            "tokenizer_class": "LlamaTokenizer",
            "model_max_length": cfg.max_seq_len,
            "add_bos_token": True,
            "add_eos_token": False,
            # The run's tokenizer adds no dummy-prefix space (pipeline.tokenizer.training): without these two,
            # transformers' Llama tokenizers prepend one, and "The garden" encodes differently from the run.
            "add_prefix_space": False,
            "legacy": False,
        }
        (out_dir / "tokenizer_config.json").write_text(json.dumps(tok_cfg, indent=2) + "\n")
    return out_dir
