"""Model and training configuration (pydantic, ``extra="forbid"`` like every other config)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from model.mixture import MixtureSpec
from pipeline.bounds import (
    BatchSize,
    EvalBatches,
    Float,
    GradClip,
    Int,
    LearningRate,
    Seed,
    SeqLen,
    Steps,
    Threads,
    WeightDecay,
    ZeroToOne,
    field_error,
)


def default_ffn_hidden(d_model: int, multiple_of: int = 32) -> int:
    """SwiGLU hidden size: 8/3 * d keeps the FFN's parameters equal to a 4*d GELU MLP."""
    hidden = int(8 * d_model / 3)
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)


class ModelConfig(BaseModel):
    """Shape of the LLaMA-style decoder."""

    model_config = ConfigDict(extra="forbid")

    vocab_size: Int = Field(gt=0, le=2**31 - 1)  # token ids are int32/int64 tensors
    n_layer: Int = Field(default=2, gt=0, le=1024)
    n_head: Int = Field(default=4, gt=0, le=1024)
    n_kv_head: Int = Field(default=2, gt=0, le=1024, description="key/value heads (GQA); must divide n_head")
    d_model: Int = Field(default=128, gt=0, le=65_536)
    ffn_hidden: Int | None = Field(default=None, gt=0, le=1_048_576, description="None: 8/3*d_model rounded up to 32")
    max_seq_len: SeqLen = Field(default=256, description="length of the precomputed rotary table")
    rope_theta: Float = Field(default=10000.0, gt=0.0, le=1e12)
    tie_embeddings: bool = True
    norm_eps: Float = Field(default=1e-5, gt=0.0, lt=1.0)

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


MAX_TRAIN_SEQUENCES = 2**31  # per run: far beyond a CPU trainer, and 16 GiB of sampler schedule


class TrainConfig(BaseModel):
    """Knobs of ``model.train.train``; defaults train ``nano`` for a few minutes on a laptop CPU."""

    model_config = ConfigDict(extra="forbid")

    preset: str = Field(default="nano", description=f"one of {sorted(PRESETS)}")
    steps: Steps = Field(default=300, description="optimizer steps")
    batch_size: BatchSize = Field(default=16, description="sequences per micro-batch")
    seq_len: SeqLen = 128
    lr: LearningRate = Field(default=3e-3, description="peak learning rate")
    min_lr_ratio: ZeroToOne = Field(default=0.1, description="cosine floor as a fraction of lr")
    warmup_steps: Int | None = Field(
        default=None, ge=0, le=10**9, description="linear warmup, at most steps; None: a tenth of steps (30 of 300)"
    )
    weight_decay: WeightDecay = 0.1
    grad_clip: GradClip = 1.0
    grad_accum: Int = Field(default=1, gt=0, le=65_536, description="micro-batches per optimizer step")
    eval_every: Int = Field(default=50, gt=0, le=10**9, description="steps between validation passes")
    eval_batches: EvalBatches = 20
    seed: Seed = 0
    threads: Threads | None = Field(default=None, description="torch CPU threads; None keeps torch's")
    tie_embeddings: bool = Field(default=True, description="share the token embedding with the output layer")
    compile: bool = Field(default=False, description="torch.compile the model (worth it on GPU for long runs)")
    checkpoint_every: Int = Field(
        default=0, ge=0, le=10**9, description="steps between resumable checkpoints in out_dir/checkpoint; 0: none"
    )
    resume: bool = Field(default=False, description="continue from out_dir/checkpoint when it exists")
    mixture: MixtureSpec | None = Field(
        default=None, description="source weights or token budgets; None samples the train stream as it is"
    )

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, v: str) -> str:
        return check_preset(v)

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        if self.warmup_steps is None:
            # Relative, so that a short run (steps=3 in a test or a smoke run) is not all warmup.
            self.warmup_steps = self.steps // 10
        if self.warmup_steps > self.steps:
            raise field_error("warmup_steps", f"{self.warmup_steps} exceeds steps={self.steps}", self.warmup_steps)
        if self.checkpoint_every > self.steps:
            msg = f"{self.checkpoint_every} exceeds steps={self.steps}: no checkpoint would ever be written"
            raise field_error("checkpoint_every", msg, self.checkpoint_every)
        # A mixture sampler draws the source of every training sequence of the run up front (8 bytes each).
        sequences = self.steps * self.grad_accum * self.batch_size
        if sequences > MAX_TRAIN_SEQUENCES:
            msg = f"steps * grad_accum * batch_size = {sequences:,} sequences, over {MAX_TRAIN_SEQUENCES:,}"
            raise field_error("steps", msg, self.steps)
        return self


def check_preset(name: str) -> str:
    """``name`` if it is a model preset, else a ValueError listing them (for pydantic validators)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return name
