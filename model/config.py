"""Model and training configuration (pydantic, ``extra="forbid"`` like every other config)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from model.mixture import MixtureSpec


def default_ffn_hidden(d_model: int, multiple_of: int = 32) -> int:
    """SwiGLU hidden size: 8/3 * d keeps the FFN's parameters equal to a 4*d GELU MLP."""
    hidden = int(8 * d_model / 3)
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)


class ModelConfig(BaseModel):
    """Shape of the LLaMA-style decoder."""

    model_config = ConfigDict(extra="forbid")

    vocab_size: int = Field(gt=0)
    n_layer: int = Field(default=2, gt=0)
    n_head: int = Field(default=4, gt=0)
    n_kv_head: int = Field(default=2, gt=0, description="key/value heads (GQA); must divide n_head")
    d_model: int = Field(default=128, gt=0)
    ffn_hidden: int | None = Field(default=None, description="None: 8/3*d_model rounded up to 32")
    max_seq_len: int = Field(default=256, gt=0, description="length of the precomputed rotary table")
    rope_theta: float = Field(default=10000.0, gt=0)
    tie_embeddings: bool = True
    norm_eps: float = Field(default=1e-5, gt=0)

    @model_validator(mode="after")
    def _check_shapes(self) -> ModelConfig:
        if self.d_model % self.n_head:
            raise ValueError(f"d_model={self.d_model} is not divisible by n_head={self.n_head}")
        if (self.d_model // self.n_head) % 2:
            raise ValueError("head_dim (d_model / n_head) must be even for rotary embeddings")
        if self.n_kv_head > self.n_head or self.n_head % self.n_kv_head:
            raise ValueError(f"n_kv_head={self.n_kv_head} must divide n_head={self.n_head}")
        if self.ffn_hidden is None:
            self.ffn_hidden = default_ffn_hidden(self.d_model)
        return self

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> ModelConfig:
        """A named preset; ``overrides`` must at least supply ``vocab_size``."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})


# Non-embedding parameter counts: nano ~0.37M, micro ~2.9M, small ~9.4M, base ~85M
# (base is ~110M with a tied 32k vocabulary, ~135M untied).
PRESETS: dict[str, dict[str, Any]] = {
    "nano": dict(n_layer=2, d_model=128, n_head=4, n_kv_head=2),
    "micro": dict(n_layer=4, d_model=256, n_head=4, n_kv_head=2),
    "small": dict(n_layer=6, d_model=384, n_head=6, n_kv_head=2),
    "base": dict(n_layer=12, d_model=768, n_head=12, n_kv_head=12),
}


class TrainConfig(BaseModel):
    """Knobs of ``model.train.train``; defaults train ``nano`` for a few minutes on a laptop CPU."""

    model_config = ConfigDict(extra="forbid")

    preset: str = Field(default="nano", description=f"one of {sorted(PRESETS)}")
    steps: int = Field(default=300, gt=0, description="optimizer steps")
    batch_size: int = Field(default=16, gt=0, description="sequences per micro-batch")
    seq_len: int = Field(default=128, gt=0)
    lr: float = Field(default=3e-3, gt=0, description="peak learning rate")
    min_lr_ratio: float = Field(default=0.1, ge=0, le=1, description="cosine floor as a fraction of lr")
    warmup_steps: int = Field(default=30, ge=0)
    weight_decay: float = Field(default=0.1, ge=0)
    grad_clip: float = Field(default=1.0, ge=0, description="max global grad norm; 0 disables")
    grad_accum: int = Field(default=1, gt=0, description="micro-batches per optimizer step")
    eval_every: int = Field(default=50, gt=0)
    eval_batches: int = Field(default=20, gt=0, description="max validation batches per source")
    seed: int = 0
    threads: int | None = Field(default=None, gt=0, description="torch CPU threads; None keeps torch's")
    tie_embeddings: bool = Field(default=True, description="share the token embedding with the output layer")
    compile: bool = Field(default=False, description="torch.compile the model (worth it on GPU for long runs)")
    checkpoint_every: int = Field(
        default=0, ge=0, description="steps between resumable checkpoints in out_dir/checkpoint; 0: none"
    )
    resume: bool = Field(default=False, description="continue from out_dir/checkpoint when it exists")
    mixture: MixtureSpec | None = Field(
        default=None, description="source weights or token budgets; None samples the train stream as it is"
    )

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, v: str) -> str:
        return check_preset(v)


def check_preset(name: str) -> str:
    """``name`` if it is a model preset, else a ValueError listing them (for pydantic validators)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return name
