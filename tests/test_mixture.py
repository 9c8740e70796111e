"""Mixture planning and the seekable mixture sampler."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model.mixture import MixtureSampler, MixtureSpec, plan_epochs

EOS = 2


def _streams() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    out = {}
    for name, n, lo in (("web", 20_000, 100), ("book", 4_000, 300), ("code", 2_000, 500)):
        toks = rng.integers(lo, lo + 100, size=n).astype(np.int32)
        toks[::50] = EOS  # document boundaries
        out[name] = toks
    return out


def test_spec_validation():
    with pytest.raises(ValueError, match="exactly one"):
        MixtureSpec()
    with pytest.raises(ValueError, match="exactly one"):
        MixtureSpec(weights={"web": 1.0}, token_budget={"web": 10})
    with pytest.raises(ValueError, match=">= 0"):
        MixtureSpec(weights={"web": -1.0})


def test_epochs_are_planned_and_flagged():
    plan = plan_epochs(MixtureSpec(weights={"web": 0.5, "book": 0.5}), {"web": 10_000, "book": 1_000}, 10_000)
    assert plan["web"]["epochs"] == 0.5 and not plan["web"]["flagged"]
    assert plan["book"]["epochs"] == 5.0 and plan["book"]["flagged"]
    with pytest.raises(ValueError, match="max_epochs"):
        plan_epochs(MixtureSpec(weights={"book": 1.0}, max_epochs=4), {"book": 1_000}, 10_000)
    with pytest.raises(ValueError, match="no tokens"):
        plan_epochs(MixtureSpec(token_budget={"wiki": 10}), {"book": 1_000}, 10_000)


def test_sampler_is_deterministic_and_follows_weights():
    spec = MixtureSpec(weights={"web": 0.5, "book": 0.3, "code": 0.2})
    a = MixtureSampler(_streams(), spec, batch_size=8, seq_len=32, steps=200, seed=3)
    b = MixtureSampler(_streams(), spec, batch_size=8, seq_len=32, steps=200, seed=3)
    for _ in range(20):
        xa, ya = a.next()
        xb, yb = b.next()
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
        assert torch.equal(xa[:, 1:], ya[:, :-1])  # targets are the next tokens
    shares = np.bincount(a.schedule.ravel(), minlength=3) / a.schedule.size
    expected = [spec.weights[s] for s in a.sources]
    assert np.allclose(shares, expected, atol=0.03)
    c = MixtureSampler(_streams(), spec, batch_size=8, seq_len=32, steps=200, seed=4)
    assert not torch.equal(c.batch(0)[0], a.batch(0)[0])


def test_rows_come_from_their_source():
    spec = MixtureSpec(weights={"web": 0.5, "code": 0.5})
    s = MixtureSampler(_streams(), spec, batch_size=16, seq_len=16, steps=10, seed=0)
    x, _ = s.batch(4)
    for row, k in zip(x, s.schedule[4], strict=True):
        lo = {"code": 500, "web": 100}[s.sources[k]]
        body = row[row != EOS]
        assert ((body >= lo) & (body < lo + 100)).all()


def test_resume_at_a_step_gives_the_same_batches():
    spec = MixtureSpec(weights={"web": 0.6, "book": 0.4})
    full = MixtureSampler(_streams(), spec, batch_size=4, seq_len=64, steps=100, seed=9)
    batches = [full.next() for _ in range(60)]
    resumed = MixtureSampler(_streams(), spec, batch_size=4, seq_len=64, steps=100, seed=9)
    resumed.load_state_dict({"step": 37, "seed": 9})
    for step in range(37, 60):
        x, y = resumed.next()
        assert torch.equal(x, batches[step][0]) and torch.equal(y, batches[step][1])


def test_epochs_cover_every_window_before_repeating():
    spec = MixtureSpec(weights={"code": 1.0})
    s = MixtureSampler(_streams(), spec, batch_size=1, seq_len=100, steps=40, seed=1)
    windows = s.windows[0]
    seen = {tuple(s.batch(i)[0][0, :8].tolist()) for i in range(windows)}
    assert len(seen) == windows  # one epoch visits each window once


def test_trainer_streams_from_a_mixture_and_resumes_exactly(tmp_path):  # FAST uses one torch thread
    import json

    from model.config import TrainConfig
    from model.train import train
    from tests.test_model import FAST, write_shards

    shards = write_shards(tmp_path / "shards", {"train": [40, 40], "val": [20]})
    cfg = {**FAST, "checkpoint_every": 4, "mixture": {"weights": {"web": 0.8, "code": 0.2}}}
    full = train(shards, tmp_path / "full", TrainConfig(**cfg))
    assert set(full["mixture"]) == {"web", "code"}
    assert full["mixture"]["web"]["tokens"] > 3 * full["mixture"]["code"]["tokens"]

    class Crash(Exception):
        pass

    def crash(record: dict) -> None:
        if record.get("kind") == "train" and record["step"] == 6:
            raise Crash

    with pytest.raises(Crash):
        train(shards, tmp_path / "cut", TrainConfig(**cfg), log=crash)
    assert json.loads((tmp_path / "cut" / "checkpoint" / "state.json").read_text())["sampler"]["step"] == 4
    resumed = train(shards, tmp_path / "cut", TrainConfig(**cfg, resume=True))
    assert [r["loss"] for r in resumed["train"]] == [r["loss"] for r in full["train"]]
