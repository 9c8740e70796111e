"""Train a small decoder on token shards and report validation loss per source.

The point is comparing data recipes, not state-of-the-art models: same seed + same shards
gives the same loss curve, so differences between runs come from the data.

Runs as one process (CPU or one GPU) or under ``torchrun`` (distributed data parallel: every
rank draws the same global batch from the same seed and trains on its own slice, so N ranks
with batch B follow the same curve as one process with batch N*B).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file

from model.config import ModelConfig, TrainConfig
from model.data import BatchSampler, Manifest, eval_batches, load_split, read_manifest, source_bytes
from model.mixture import MixtureSampler
from model.model import Transformer
from pipeline.atomic import atomic_write

Log = Callable[[dict], None]

# Dense bf16 peak FLOP/s by GPU name, for model FLOPs utilisation (MFU).
GPU_PEAK_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12, "L4": 121e12}


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup to ``lr``, then cosine decay to ``lr * min_lr_ratio`` at the last step."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - 1 - cfg.warmup_steps)
    min_lr = cfg.lr * cfg.min_lr_ratio
    return min_lr + 0.5 * (1 + math.cos(math.pi * min(1.0, progress))) * (cfg.lr - min_lr)


def make_adamw(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """Decay only matrices; norms' gains and the token embedding are left alone (decaying
    an embedding row pulls rare tokens towards zero just because they are rare). The fused
    kernel (one pass per tensor, CPU and CUDA) is markedly faster than the default foreach one."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():  # a tied lm_head appears once, as tok_emb
        (decay if p.dim() >= 2 and not name.startswith("tok_emb") else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95), eps=1e-8, fused=True)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    return make_adamw(model, cfg.lr, cfg.weight_decay)


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    # bf16 only on GPU; CPU stays float32 so results are exact and reproducible.
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def flops_per_token(cfg: ModelConfig, seq_len: int) -> float:
    """Training FLOPs per token (PaLM appendix B): 6 per weight of every matmul, the output layer
    included, plus 12 * layers * d * T for the attention scores and their weighted sum."""
    d, h, kv = cfg.d_model, cfg.n_head * cfg.head_dim, cfg.n_kv_head * cfg.head_dim
    assert cfg.ffn_hidden is not None
    per_layer = d * (h + 2 * kv) + h * d + 3 * d * cfg.ffn_hidden
    return 6 * (cfg.n_layer * per_layer + d * cfg.vocab_size) + 12 * cfg.n_layer * d * seq_len


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in GPU_PEAK_FLOPS.items() if k in name), None)


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    val: dict[str, np.ndarray],
    cfg: TrainConfig,
    device: torch.device,
    bytes_per_token: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Mean token NLL overall (token-weighted across sources) and per source, with perplexity and,
    when ``bytes_per_token`` is known, bits per byte: NLL in bits over the UTF-8 bytes the scored
    tokens stand for, which does not depend on the tokenizer."""
    model.eval()
    total_nll, total_n, total_bytes, per_source, per_bpb = 0.0, 0, 0.0, {}, {}
    for source, stream in val.items():
        nll, n = 0.0, 0
        for x, y in eval_batches(stream, cfg.batch_size, cfg.seq_len, cfg.eval_batches):
            x, y = x.to(device), y.to(device)
            with autocast(device):
                _, mean_nll = model(x, y)  # chunked: the (tokens x vocab) logits are never held
            nll += mean_nll.item() * y.numel()
            n += y.numel()
        if n:
            per_source[source] = nll / n
            total_nll, total_n = total_nll + nll, total_n + n
            if bytes_per_token and bytes_per_token.get(source):
                per_bpb[source] = nll / math.log(2) / (n * bytes_per_token[source])
                total_bytes += n * bytes_per_token[source]
    model.train()
    if not total_n:
        raise ValueError("the val split has fewer than 2 tokens; nothing to evaluate")
    loss = total_nll / total_n
    out: dict[str, Any] = {
        "loss": loss,
        "ppl": math.exp(min(loss, 50.0)),
        "per_source": per_source,
        "per_source_ppl": {s: math.exp(min(v, 50.0)) for s, v in per_source.items()},
    }
    if per_bpb and len(per_bpb) == len(per_source):
        out["bpb"] = total_nll / math.log(2) / total_bytes
        out["per_source_bpb"] = per_bpb
    return out


# --- files -----------------------------------------------------------------------------------


def _atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Write through a temp file in the same folder, then rename: readers never see half a file."""
    atomic_write(path, lambda tmp: write(str(tmp)))


def _write_json(path: Path, obj: Any) -> None:
    _atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(obj, indent=2) + "\n"))


def _save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    _atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={"format": "pt"}))


def _model_tensors(model: Transformer) -> dict[str, torch.Tensor]:
    state = dict(model.state_dict())
    if model.cfg.tie_embeddings:
        del state["lm_head.weight"]  # same tensor as tok_emb.weight; safetensors refuses shared storage
    return state


def save_checkpoint(model: Transformer, out_dir: Path, cfg: TrainConfig, manifest: Manifest) -> None:
    """The model alone: ``model.safetensors`` + ``config.json`` (what ``load_model`` reads)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    _save_tensors(out_dir / "model.safetensors", _model_tensors(model))
    vocab = {k: getattr(manifest, k) for k in ("vocab_size", "bos_id", "eos_id", "pad_id", "tokenizer")}
    _write_json(
        out_dir / "config.json",
        {"model": model.cfg.model_dump(), "train": cfg.model_dump(), "vocab": vocab},
    )


def save_train_state(
    ckpt: Path,
    model: Transformer,
    optimizer: torch.optim.Optimizer,
    sampler: BatchSampler | MixtureSampler,
    step: int,
    metrics: dict,
) -> None:
    """Everything a resume needs: weights, AdamW moments, the sampler's RNG, the step and the
    metrics so far. Tensors go to safetensors; the rest (step, param groups) to JSON. Written to
    a sibling folder and swapped in, so a crash mid-write leaves the previous checkpoint whole."""
    tmp = ckpt.with_name(ckpt.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _save_tensors(tmp / "model.safetensors", _model_tensors(model))
    opt = optimizer.state_dict()
    tensors = {f"{i}.{k}": v for i, st in opt["state"].items() for k, v in st.items()}
    if isinstance(sampler, BatchSampler):
        tensors["sampler_rng"] = sampler.gen.get_state()
    tensors["torch_rng"] = torch.get_rng_state()
    _save_tensors(tmp / "optimizer.safetensors", tensors)
    meta = {"step": step, "param_groups": opt["param_groups"], "metrics": metrics}
    if isinstance(sampler, MixtureSampler):
        meta["sampler"] = sampler.state_dict()  # seekable: the step is its whole state
    _write_json(tmp / "state.json", meta)
    old = ckpt.with_name(ckpt.name + ".old")
    if ckpt.exists():
        ckpt.rename(old)
    tmp.rename(ckpt)
    shutil.rmtree(old, ignore_errors=True)


def load_train_state(
    ckpt: Path, model: Transformer, optimizer: torch.optim.Optimizer, sampler: BatchSampler | MixtureSampler
) -> tuple[int, dict]:
    """Restore what ``save_train_state`` wrote; returns (steps done, metrics so far)."""
    meta = json.loads((ckpt / "state.json").read_text())
    state = load_file(ckpt / "model.safetensors")
    if model.cfg.tie_embeddings:
        state["lm_head.weight"] = state["tok_emb.weight"]
    model.load_state_dict(state, strict=True)
    tensors = load_file(ckpt / "optimizer.safetensors")
    if isinstance(sampler, BatchSampler):
        sampler.gen.set_state(tensors.pop("sampler_rng"))
    else:
        sampler.load_state_dict(meta["sampler"])
    torch.set_rng_state(tensors.pop("torch_rng"))
    opt_state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        i, name = key.split(".", 1)
        opt_state.setdefault(int(i), {})[name] = value
    optimizer.load_state_dict({"state": opt_state, "param_groups": meta["param_groups"]})
    return int(meta["step"]), meta["metrics"]


def _copy_tokenizer(shards_dir: Path, manifest: Manifest, out_dir: Path) -> None:
    """Put the sentencepiece model next to the weights so the model folder stands alone."""
    src = (shards_dir / manifest.tokenizer) if manifest.tokenizer else None
    if src is not None and src.is_file():
        shutil.copyfile(src, out_dir / "tokenizer.model")


# --- distributed -----------------------------------------------------------------------------


def _init_distributed(device_type: str) -> tuple[int, int]:
    """(rank, world size); starts the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


# --- training loop ---------------------------------------------------------------------------


def train(shards_dir: Path, out_dir: Path, cfg: TrainConfig, log: Log | None = None) -> dict:
    """Train ``cfg.preset`` on ``shards_dir/train-*``, evaluate on ``val-*``, write ``out_dir``.

    Writes ``model.safetensors``, ``config.json``, ``metrics.json`` (and ``tokenizer.model`` when
    the shards' manifest points at one) and returns the metrics. ``log`` gets every record as it
    happens, tagged ``{"kind": "train" | "val", ...}``. Raises ValueError when the shards are
    missing a split or are too short for ``seq_len``. Under torchrun only rank 0 writes files.
    """
    t_start = time.perf_counter()
    shards_dir, out_dir = Path(shards_dir), Path(out_dir)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    use_cuda = torch.cuda.is_available()
    rank, world = _init_distributed("cuda" if use_cuda else "cpu")
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = True

    manifest = read_manifest(shards_dir)
    train_split = load_split(shards_dir, "train", manifest)
    val_split = load_split(shards_dir, "val", manifest)
    val = val_split.by_source()
    bytes_per_token = source_bytes(shards_dir, "val", manifest, val_split)
    # Every rank draws the same global micro-batch and keeps its slice of it.
    sampler: BatchSampler | MixtureSampler
    if cfg.mixture is not None:
        streams = train_split.by_source()
        steps = cfg.steps * cfg.grad_accum
        sampler = MixtureSampler(streams, cfg.mixture, cfg.batch_size * world, cfg.seq_len, steps, seed=cfg.seed)
    else:
        sampler = BatchSampler(train_split.tokens, cfg.batch_size * world, cfg.seq_len, seed=cfg.seed)
    rows = slice(rank * cfg.batch_size, (rank + 1) * cfg.batch_size)

    mcfg = ModelConfig.from_preset(
        cfg.preset, vocab_size=manifest.vocab_size, max_seq_len=cfg.seq_len, tie_embeddings=cfg.tie_embeddings
    )
    raw_model = Transformer(mcfg).to(device)
    optimizer = make_optimizer(raw_model, cfg)
    metrics: dict[str, Any] = {"params": raw_model.num_parameters(), "train": [], "val": []}
    if isinstance(sampler, MixtureSampler):
        metrics["mixture"] = sampler.plan  # tokens, epochs and the >4-epoch flag per source
    ckpt = out_dir / "checkpoint"
    start_step = 0
    if cfg.resume and (ckpt / "state.json").is_file():
        start_step, metrics = load_train_state(ckpt, raw_model, optimizer, sampler)
    model: torch.nn.Module = raw_model
    if cfg.compile:
        model = torch.compile(model)
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if use_cuda else None)
    emit = log or (lambda record: None)
    if rank == 0:
        emit({"kind": "model", "params": metrics["params"], "preset": cfg.preset, "world_size": world})

    def run_eval(step: int) -> None:
        if rank == 0:
            record = {"step": step, **evaluate(raw_model, val, cfg, device, bytes_per_token)}
            metrics["val"].append(record)
            emit({"kind": "val", **record})
        if world > 1:
            dist.barrier()

    tokens_per_step = cfg.batch_size * cfg.seq_len * cfg.grad_accum * world
    flops_step = flops_per_token(mcfg, cfg.seq_len) * tokens_per_step
    peak = peak_flops(device)
    for step in range(start_step, cfg.steps):
        t0 = time.perf_counter()
        lr = lr_at(step, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss_sum = torch.zeros((), device=device)
        for micro in range(cfg.grad_accum):
            x, y = (t[rows].to(device, non_blocking=True) for t in sampler.next())
            # DDP: all-reduce gradients only after the last micro-batch.
            sync = world == 1 or micro == cfg.grad_accum - 1
            with autocast(device), contextlib.nullcontext() if sync else model.no_sync():
                _, loss = model(x, y)
                (loss / cfg.grad_accum).backward()
            loss_sum += loss.detach()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(raw_model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if world > 1:
            dist.all_reduce(loss_sum, op=dist.ReduceOp.AVG)
        loss_value = loss_sum.item() / cfg.grad_accum  # .item() waits for the GPU, so dt is honest
        dt = time.perf_counter() - t0
        record = {"step": step + 1, "loss": loss_value, "lr": lr, "tokens_per_s": tokens_per_step / dt}
        if peak:
            record["mfu"] = flops_step / dt / (peak * world)
        metrics["train"].append(record)
        if rank == 0:
            emit({"kind": "train", **record})
        if (step + 1) % cfg.eval_every == 0 and step + 1 < cfg.steps:
            run_eval(step + 1)
        if cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0 and rank == 0:
            save_train_state(ckpt, raw_model, optimizer, sampler, step + 1, metrics)
    run_eval(cfg.steps)

    metrics["tokens_seen"] = tokens_per_step * cfg.steps
    metrics["seconds"] = time.perf_counter() - t_start
    if rank == 0:
        final = metrics["val"][-1]
        metrics["final_val_loss"] = final["loss"]
        metrics["final_val_ppl"] = final["ppl"]
        metrics["final_val_per_source"] = final["per_source"]
        if "bpb" in final:
            metrics["final_val_bpb"] = final["bpb"]
            metrics["final_val_per_source_bpb"] = final["per_source_bpb"]
        out_dir.mkdir(parents=True, exist_ok=True)
        save_checkpoint(raw_model, out_dir, cfg, manifest)
        _copy_tokenizer(shards_dir, manifest, out_dir)
        _write_json(out_dir / "metrics.json", metrics)
    if world > 1:
        dist.barrier()
    return metrics


def main(argv: list[str] | None = None) -> None:
    """``python -m model.train SHARDS OUT [key=value ...]`` (``key`` a TrainConfig field); the way to
    run data parallel: ``torchrun --nproc_per_node 2 -m model.train SHARDS OUT steps=200``."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m model.train", description=main.__doc__)
    ap.add_argument("shards", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("overrides", nargs="*", help="TrainConfig fields as key=value (values parsed as JSON)")
    args = ap.parse_args(argv)
    params: dict[str, Any] = {}
    for item in args.overrides:
        key, _, value = item.partition("=")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value  # a bare string, e.g. preset=micro
    rank0 = int(os.environ.get("RANK", "0")) == 0
    metrics = train(args.shards, args.out, TrainConfig(**params), log=lambda r: print(json.dumps(r)) if rank0 else None)
    if dist.is_initialized():
        dist.destroy_process_group()
    if rank0:
        print(json.dumps({k: metrics.get(k) for k in ("params", "final_val_loss", "final_val_bpb", "tokens_seen")}))


if __name__ == "__main__":
    main()
