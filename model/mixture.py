"""Data mixtures: how many tokens each source contributes, and a sampler the trainer streams from.

A mixture gives each source a weight (share of training tokens) or a token budget. The sampler
cuts each source's token stream (documents joined with BOS/EOS, see ``model.data``) into
fixed-length windows and serves them in a per-source, per-epoch shuffled order. Which source each
row comes from is drawn once for the whole run from the seed, so batch ``k`` is a pure function of
``(seed, k)``: the sampler is deterministic and seekable (resume at any step without replaying).
Repeating a source more than ``warn_epochs`` times is flagged (Muennighoff et al. 2023 find
returns diminish past ~4 epochs); beyond ``max_epochs`` it is an error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipeline.bounds import Float, Int

if TYPE_CHECKING:  # torch loads with the sampler, so a config check (MixtureSpec) stays light
    import torch


class MixtureSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Share of training tokens per source (normalised); sources not named get none.
    weights: dict[str, Float] | None = None
    # Or: absolute training tokens per source (the run's token total is then their sum).
    token_budget: dict[str, Int] | None = None
    max_epochs: Float = Field(16.0, gt=0.0, le=1e6)
    warn_epochs: Float = Field(4.0, gt=0.0, le=1e6)

    @model_validator(mode="after")
    def _one_of(self) -> MixtureSpec:
        if (self.weights is None) == (self.token_budget is None):
            raise ValueError("a mixture sets exactly one of `weights` or `token_budget`")
        values = (self.weights or self.token_budget or {}).values()
        if any(v < 0 for v in values) or not any(v > 0 for v in values):
            raise ValueError("mixture weights/budgets must be >= 0 with at least one > 0")
        return self

    def tokens_per_source(self, total_tokens: int) -> dict[str, int]:
        if self.token_budget is not None:
            return {s: int(n) for s, n in self.token_budget.items() if n > 0}
        total_w = sum(self.weights.values())  # type: ignore[union-attr]
        return {s: int(round(total_tokens * w / total_w)) for s, w in self.weights.items() if w > 0}  # type: ignore[union-attr]


def plan_epochs(spec: MixtureSpec, stream_tokens: dict[str, int], total_tokens: int) -> dict[str, dict]:
    """Per source: tokens wanted, tokens available, epochs; raises if a source is missing or over max_epochs."""
    plan = {}
    for src, want in spec.tokens_per_source(total_tokens).items():
        have = stream_tokens.get(src, 0)
        if have == 0:
            raise ValueError(f"mixture names source {src!r} but the shards hold no tokens for it")
        epochs = want / have
        if epochs > spec.max_epochs:
            raise ValueError(f"source {src!r} would be repeated {epochs:.1f} times (max_epochs={spec.max_epochs})")
        plan[src] = {
            "tokens": want,
            "available": have,
            "epochs": round(epochs, 3),
            "flagged": epochs > spec.warn_epochs,
        }
    return plan


class MixtureSampler:
    """Seekable (x, y) batches of ``seq_len`` tokens mixing sources by their planned token shares."""

    def __init__(
        self, streams: dict[str, np.ndarray], spec: MixtureSpec, batch_size: int, seq_len: int, steps: int, seed: int
    ) -> None:
        import torch

        self.batch_size, self.seq_len, self.seed = batch_size, seq_len, seed
        total = steps * batch_size * seq_len
        self.plan = plan_epochs(spec, {s: len(t) for s, t in streams.items()}, total)
        self.sources = sorted(self.plan)
        self.streams = [torch.from_numpy(np.ascontiguousarray(streams[s])) for s in self.sources]
        self.windows = [max((len(t) - 1) // seq_len, 0) for t in self.streams]
        for src, n in zip(self.sources, self.windows, strict=True):
            if n == 0:
                raise ValueError(f"source {src!r} has fewer than seq_len+1={seq_len + 1} tokens")
        weights = np.array([self.plan[s]["tokens"] for s in self.sources], dtype=np.float64)
        rng = np.random.default_rng([seed, 0x6D6978])  # the whole run's source schedule, drawn once
        self.schedule = rng.choice(len(self.sources), size=(steps, batch_size), p=weights / weights.sum())
        self.step = 0
        self._offsets = torch.arange(seq_len + 1)

    def _window_order(self, k: int, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, k, epoch]).permutation(self.windows[k])

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch served at ``step`` (0-based), independent of what was served before."""
        if not 0 <= step < len(self.schedule):
            raise IndexError(f"step {step} outside the planned {len(self.schedule)} steps")
        before = np.bincount(self.schedule[:step].ravel(), minlength=len(self.sources))
        rows = []
        for k in self.schedule[step]:
            draw = int(before[k])
            before[k] += 1
            epoch, j = divmod(draw, self.windows[k])
            start = int(self._window_order(k, epoch)[j]) * self.seq_len
            rows.append(self.streams[k][start + self._offsets])
        import torch

        window = torch.stack(rows).long()
        return window[:, :-1], window[:, 1:]

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.batch(self.step)
        self.step += 1
        return x, y

    def state_dict(self) -> dict[str, int]:
        return {"step": self.step, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state["seed"] != self.seed:
            raise ValueError("sampler state comes from a different seed")
        self.step = int(state["step"])
