"""Output projection and cross-entropy in one pass over row chunks.

The plain way, ``F.cross_entropy(h @ W.T, targets)``, writes a (tokens x vocab) logits tensor, a
log-softmax of the same size, and the same two again in the backward pass: at batch 16 x 256 and
a vocabulary of 8,000 that is four passes over 131 MB, more time on CPU than the projection GEMM
itself. Here each chunk of rows is projected, reduced to its loss, and, when gradients are
wanted, turned straight into d(loss)/d(logits) = (softmax - onehot) / n while it is still in
cache; the gradients of h and W are computed then, so the backward pass only scales them.
The full logits never exist. Targets equal to ``ignore_index`` count neither in the loss nor
in the mean, as in ``F.cross_entropy``.
"""

from __future__ import annotations

import math

import torch

from model.cpu_gemm import mm_nt, weight_grad

IGNORE_INDEX = -100


def _chunk_rows(vocab: int) -> int:
    """Rows per chunk: about 16 MB of float32 logits (measured fastest at vocab 8,000 on 2 cores)."""
    return max(64, (1 << 22) // max(vocab, 1))


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        n_rows, vocab = h.shape[0], weight.shape[0]
        valid = targets != IGNORE_INDEX
        n_valid = int(valid.sum())
        want_grad = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        grad_h = torch.empty_like(h) if ctx.needs_input_grad[0] else None
        grad_w = torch.zeros_like(weight, dtype=torch.float32) if ctx.needs_input_grad[1] else None
        log_n = math.log(max(n_valid, 1))
        loss_sum = torch.zeros((), dtype=torch.float32, device=h.device)
        rows = _chunk_rows(vocab)
        for start in range(0, n_rows, rows):
            h_c, t_c, ok = h[start : start + rows], targets[start : start + rows], valid[start : start + rows]
            all_ok = bool(ok.all())
            t_safe = t_c if all_ok else t_c.clamp(min=0)
            logits = mm_nt(h_c, weight).float()
            lse = torch.logsumexp(logits, dim=-1)
            nll = lse - logits.gather(1, t_safe[:, None])[:, 0]
            loss_sum += nll.sum() if all_ok else nll[ok].sum()
            if not want_grad:
                continue
            # softmax / n in place, then subtract onehot / n at the targets.
            probs = logits.sub_((lse + log_n)[:, None]).exp_()
            probs.scatter_add_(1, t_safe[:, None], torch.full_like(lse, -1.0 / max(n_valid, 1))[:, None])
            if not all_ok:
                probs[~ok] = 0.0
            if grad_h is not None:
                grad_h[start : start + rows] = mm_nt(probs, weight.t())
            if grad_w is not None:
                grad_w += weight_grad(h_c.float(), probs)
        ctx.save_for_backward(*(g for g in (grad_h, grad_w) if g is not None))
        ctx.has = (grad_h is not None, grad_w is not None)
        ctx.weight_dtype = weight.dtype
        return loss_sum / max(n_valid, 1)

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:  # type: ignore[override]
        saved = list(ctx.saved_tensors)
        grad_h = saved.pop(0) * grad_loss if ctx.has[0] else None
        grad_w = (saved.pop(0) * grad_loss).to(ctx.weight_dtype) if ctx.has[1] else None
        return grad_h, grad_w, None


def linear_cross_entropy(h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of ``h @ weight.T`` against ``targets``; h is (..., d), targets (...)."""
    return _LinearCrossEntropy.apply(h.reshape(-1, h.shape[-1]), weight, targets.reshape(-1))
