"""Text generation: greedy, sampling (temperature, top-k, top-p) and beam search.

Each step reruns the model on the (cropped) context, as nanoGPT does: no key/value cache, which
keeps the code short and is fast enough for the small models this project trains. Logits are
processed in a fixed order: repetition penalty -> frequency/presence penalties -> temperature ->
top-k -> top-p. Stop tokens (eos) and stop sequences end the output and are not part of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from model.model import Transformer


@dataclass
class GenerationConfig:
    max_new_tokens: int = 64
    min_new_tokens: int = 0  # eos is not allowed before this many tokens
    greedy: bool = False  # argmax instead of sampling (temperature 0 means the same)
    temperature: float = 1.0
    top_k: int | None = None  # sample only among the k most likely tokens
    top_p: float | None = None  # ... or the smallest set whose probability reaches p (nucleus)
    repetition_penalty: float = 1.0  # CTRL-style: divide (or, if negative, multiply) seen tokens' logits
    frequency_penalty: float = 0.0  # OpenAI-style: subtract penalty * count of each generated token
    presence_penalty: float = 0.0  # ... and penalty once for every token generated at least once
    num_beams: int = 1  # > 1: beam search (deterministic)
    length_penalty: float = 1.0  # beam score = sum log p / length ** length_penalty
    stop_sequences: list[list[int]] = field(default_factory=list)
    eos_id: int | None = None
    seed: int = 0


def process_logits(
    logits: torch.Tensor, context: Sequence[int], generated: Sequence[int], cfg: GenerationConfig
) -> torch.Tensor:
    """Apply the penalties, temperature, top-k and top-p to one row of next-token logits.

    ``context`` is prompt + generated (the repetition penalty looks at both, like HF);
    frequency/presence penalties count only the ``generated`` tokens (like OpenAI's API).
    Filtered-out tokens get ``-inf``.
    """
    logits = logits.float().clone()
    if cfg.eos_id is not None and len(generated) < cfg.min_new_tokens:
        logits[cfg.eos_id] = float("-inf")
    if cfg.repetition_penalty != 1.0 and len(context):
        seen = torch.tensor(sorted(set(context)), dtype=torch.long)
        vals = logits[seen]
        logits[seen] = torch.where(vals > 0, vals / cfg.repetition_penalty, vals * cfg.repetition_penalty)
    if (cfg.frequency_penalty or cfg.presence_penalty) and len(generated):
        counts = torch.bincount(torch.tensor(list(generated), dtype=torch.long), minlength=logits.numel())
        logits -= cfg.frequency_penalty * counts + cfg.presence_penalty * (counts > 0).float()
    if cfg.greedy or cfg.temperature == 0 or cfg.num_beams > 1:
        return logits  # temperature / truncation do not change an argmax or a beam's ranking
    logits = logits / cfg.temperature
    if cfg.top_k is not None and cfg.top_k < logits.numel():
        kth = torch.topk(logits, cfg.top_k).values[-1]
        logits[logits < kth] = float("-inf")
    if cfg.top_p is not None and cfg.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        # Drop a token when the tokens before it already reach top_p; the first is always kept.
        drop = (cum - sorted_logits.softmax(-1)) >= cfg.top_p
        logits[order[drop]] = float("-inf")
    return logits


def _stopped(generated: list[int], cfg: GenerationConfig) -> int:
    """How many trailing tokens to cut because they end the output (0: keep going)."""
    if cfg.eos_id is not None and generated and generated[-1] == cfg.eos_id:
        return 1
    for stop in cfg.stop_sequences:
        if stop and generated[-len(stop) :] == list(stop):
            return len(stop)
    return 0


@torch.no_grad()
def _next_logits(model: Transformer, seqs: list[list[int]]) -> torch.Tensor:
    """Last-position logits for equal-length sequences, cropped to the model's context."""
    device = next(model.parameters()).device
    idx = torch.tensor([s[-model.cfg.max_seq_len :] for s in seqs], dtype=torch.long, device=device)
    return model(idx)[0][:, -1, :].float().cpu()


@torch.no_grad()
def generate(model: Transformer, prompt: Sequence[int], cfg: GenerationConfig) -> list[int]:
    """New token ids after ``prompt`` (not including it, nor the eos / stop sequence that ended it)."""
    if not len(prompt):
        raise ValueError("the prompt must hold at least one token (e.g. bos)")
    model.eval()
    if cfg.num_beams > 1:
        return beam_search(model, prompt, cfg)
    gen = torch.Generator().manual_seed(cfg.seed)
    out: list[int] = []
    for _ in range(cfg.max_new_tokens):
        logits = process_logits(_next_logits(model, [[*prompt, *out]])[0], [*prompt, *out], out, cfg)
        if cfg.greedy or cfg.temperature == 0:
            token = int(torch.argmax(logits))
        else:
            token = int(torch.multinomial(logits.softmax(-1), 1, generator=gen))
        out.append(token)
        if cut := _stopped(out, cfg):
            return out[:-cut]
    return out


def beam_search(model: Transformer, prompt: Sequence[int], cfg: GenerationConfig) -> list[int]:
    """Keep the ``num_beams`` best partial outputs by summed log-probability; a finished one is
    scored ``sum log p / len ** length_penalty`` (> 1 favours longer outputs, < 1 shorter).
    Stops once ``num_beams`` outputs have finished (HF's ``early_stopping=True``)."""
    k = cfg.num_beams
    beams: list[tuple[list[int], float]] = [([], 0.0)]
    finished: list[tuple[float, list[int]]] = []
    for _ in range(cfg.max_new_tokens):
        logits = _next_logits(model, [[*prompt, *toks] for toks, _ in beams])
        cands = []
        for row, (toks, score) in zip(logits, beams, strict=True):
            logp = process_logits(row, [*prompt, *toks], toks, cfg).log_softmax(-1)
            top = torch.topk(logp, min(2 * k, logp.numel()))
            cands += [(score + float(v), toks + [int(t)]) for v, t in zip(top.values, top.indices, strict=True)]
        cands.sort(key=lambda c: c[0], reverse=True)
        beams = []
        for score, toks in cands:
            if cut := _stopped(toks, cfg):
                finished.append((score / len(toks) ** cfg.length_penalty, toks[:-cut]))
            else:
                beams.append((toks, score))
            if len(beams) == k:
                break
        if len(finished) >= k or not beams:
            break
    finished += [(score / max(1, len(toks)) ** cfg.length_penalty, toks) for toks, score in beams]
    return max(finished, key=lambda f: f[0])[1]


def sample_text(model: Transformer, sp, prompt: str, cfg: GenerationConfig, stop_texts: Sequence[str] = ()) -> str:
    """Encode ``prompt`` with the sentencepiece processor ``sp``, generate, decode the new text; it
    ends before the first stop text (text-level stops also catch sequences tokenized differently)."""
    ids = [sp.bos_id(), *sp.encode(prompt)] if sp.bos_id() >= 0 else list(sp.encode(prompt))
    if cfg.eos_id is None and sp.eos_id() >= 0:
        cfg.eos_id = sp.eos_id()
    cfg.stop_sequences = [*cfg.stop_sequences, *(sp.encode(s) for s in stop_texts if s)]
    new = generate(model, ids, cfg)
    # Decode with the prompt so the first new piece keeps its leading space, then cut the prompt off.
    full, head = sp.decode([*ids, *new]), sp.decode(ids)
    text = full[len(head) :] if full.startswith(head) else sp.decode(new)
    for s in stop_texts:
        if s and s in text:
            text = text[: text.index(s)]
    return text
