"""Train a small decoder on token shards and report validation loss per source.

The point is comparing data recipes, not state-of-the-art models: same seed + same shards
gives the same loss curve, so differences between runs come from the data.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from model.config import ModelConfig, TrainConfig
from model.data import BatchSampler, Manifest, eval_batches, load_split, read_manifest
from model.model import Transformer

Log = Callable[[dict], None]


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup to ``lr``, then cosine decay to ``lr * min_lr_ratio`` at the last step."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - 1 - cfg.warmup_steps)
    min_lr = cfg.lr * cfg.min_lr_ratio
    return min_lr + 0.5 * (1 + math.cos(math.pi * min(1.0, progress))) * (cfg.lr - min_lr)


def make_optimizer(model: Transformer, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """Decay only matrices; norms' gains and the token embedding are left alone (decaying
    an embedding row pulls rare tokens towards zero just because they are rare)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():  # a tied lm_head appears once, as tok_emb
        (decay if p.dim() >= 2 and not name.startswith("tok_emb") else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95), eps=1e-8, fused=device.type == "cuda")


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    # bf16 only on GPU; CPU stays float32 so results are exact and reproducible.
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def evaluate(
    model: Transformer, val: dict[str, np.ndarray], cfg: TrainConfig, device: torch.device
) -> tuple[float, dict[str, float]]:
    """Mean token NLL overall (token-weighted across sources) and per source."""
    model.eval()
    total_nll, total_n, per_source = 0.0, 0, {}
    for source, stream in val.items():
        nll, n = 0.0, 0
        for x, y in eval_batches(stream, cfg.batch_size, cfg.seq_len, cfg.eval_batches):
            x, y = x.to(device), y.to(device)
            with autocast(device):
                logits, _ = model(x)
            nll += F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), reduction="sum").item()
            n += y.numel()
        if n:
            per_source[source] = nll / n
            total_nll, total_n = total_nll + nll, total_n + n
    model.train()
    if not total_n:
        raise ValueError("the val split has fewer than 2 tokens; nothing to evaluate")
    return total_nll / total_n, per_source


def _atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Write through a temp file in the same folder, then rename: readers never see half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_json(path: Path, obj: Any) -> None:
    _atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(obj, indent=2) + "\n"))


def save_checkpoint(model: Transformer, out_dir: Path, cfg: TrainConfig, manifest: Manifest) -> None:
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if model.cfg.tie_embeddings:
        del state["lm_head.weight"]  # same tensor as tok_emb.weight; safetensors refuses shared storage
    _atomic_write(out_dir / "model.safetensors", lambda tmp: save_file(state, tmp, metadata={"format": "pt"}))
    vocab = {k: getattr(manifest, k) for k in ("vocab_size", "bos_id", "eos_id", "pad_id", "tokenizer")}
    _write_json(
        out_dir / "config.json",
        {"model": model.cfg.model_dump(), "train": cfg.model_dump(), "vocab": vocab},
    )


def train(shards_dir: Path, out_dir: Path, cfg: TrainConfig, log: Log | None = None) -> dict:
    """Train ``cfg.preset`` on ``shards_dir/train-*``, evaluate on ``val-*``, write ``out_dir``.

    Writes ``model.safetensors``, ``config.json`` and ``metrics.json`` and returns the metrics.
    ``log`` gets every record as it happens, tagged ``{"kind": "train" | "val", ...}``.
    Raises ValueError when the shards are missing a split or are too short for ``seq_len``.
    """
    t_start = time.perf_counter()
    shards_dir, out_dir = Path(shards_dir), Path(out_dir)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    manifest = read_manifest(shards_dir)
    train_split = load_split(shards_dir, "train", manifest)
    val = load_split(shards_dir, "val", manifest).by_source()
    sampler = BatchSampler(train_split.tokens, cfg.batch_size, cfg.seq_len, seed=cfg.seed)

    mcfg = ModelConfig.from_preset(cfg.preset, vocab_size=manifest.vocab_size, max_seq_len=cfg.seq_len)
    model = Transformer(mcfg).to(device)
    optimizer = make_optimizer(model, cfg, device)
    metrics: dict[str, Any] = {"params": model.num_parameters(), "train": [], "val": []}
    emit = log or (lambda record: None)

    def run_eval(step: int) -> None:
        loss, per_source = evaluate(model, val, cfg, device)
        record = {"step": step, "loss": loss, "ppl": math.exp(min(loss, 50.0)), "per_source": per_source}
        metrics["val"].append(record)
        emit({"kind": "val", **record})

    tokens_per_step = cfg.batch_size * cfg.seq_len * cfg.grad_accum
    for step in range(cfg.steps):
        t0 = time.perf_counter()
        lr = lr_at(step, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss_sum = 0.0
        for _ in range(cfg.grad_accum):
            x, y = (t.to(device, non_blocking=True) for t in sampler.next())
            with autocast(device):
                _, loss = model(x, y)
            (loss / cfg.grad_accum).backward()
            loss_sum += loss.item()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        dt = time.perf_counter() - t0
        record = {
            "step": step + 1,
            "loss": loss_sum / cfg.grad_accum,
            "lr": lr,
            "tokens_per_s": tokens_per_step / dt,
        }
        metrics["train"].append(record)
        emit({"kind": "train", **record})
        if (step + 1) % cfg.eval_every == 0 and step + 1 < cfg.steps:
            run_eval(step + 1)
    run_eval(cfg.steps)

    out_dir.mkdir(parents=True, exist_ok=True)
    save_checkpoint(model, out_dir, cfg, manifest)
    metrics["final_val_loss"] = metrics["val"][-1]["loss"]
    metrics["final_val_ppl"] = metrics["val"][-1]["ppl"]
    metrics["final_val_per_source"] = metrics["val"][-1]["per_source"]
    metrics["tokens_seen"] = tokens_per_step * cfg.steps
    metrics["seconds"] = time.perf_counter() - t_start
    _write_json(out_dir / "metrics.json", metrics)
    return metrics
