"""Float32 linear layers through oneDNN on x86 CPUs.

PyTorch's CPU matmul calls MKL, and MKL picks its kernels by CPU vendor: on AMD processors it
runs its AVX2 code even where the CPU has AVX-512. oneDNN (bundled with every x86 PyTorch wheel)
dispatches on the CPU's features instead, and runs the same float32 products about twice as fast
at our layer shapes (``benchmarks/train.py --gemm`` prints both). The arithmetic is still IEEE
float32 with float32 accumulation; only the summation order differs, as between any two BLAS
libraries. Everything else (CUDA, bf16 autocast, other dtypes) goes through ``F.linear``.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F

_BACKENDS = ("onednn", "default")
# Checked once: torch.compile will not trace torch.backends.mkldnn.is_available().
ONEDNN_AVAILABLE = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def set_cpu_gemm(backend: str) -> None:
    """Choose the CPU float32 GEMM: ``onednn`` (default) or ``default`` (PyTorch's own, MKL)."""
    global _backend
    if backend not in _BACKENDS:
        raise ValueError(f"cpu gemm backend must be one of {_BACKENDS}, got {backend!r}")
    _backend = backend


_backend = "onednn"
set_cpu_gemm(os.environ.get("REFINERY_CPU_GEMM", "onednn"))


def _use_onednn(*tensors: torch.Tensor) -> bool:
    return (
        ONEDNN_AVAILABLE
        and _backend == "onednn"
        and all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors)
        and not torch.is_autocast_enabled("cpu")
    )


def _onednn_a_bt(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(a, b, None, "none", [], "")


# The same product as an opaque custom op, for torch.compile: Inductor's own lowering of
# mkldnn._linear_pointwise only takes the packed weights of its inference path.
@torch.library.custom_op("refinery::onednn_a_bt", mutates_args=())
def _onednn_a_bt_op(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return _onednn_a_bt(a, b)


@_onednn_a_bt_op.register_fake
def _(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a.new_empty(a.shape[0], b.shape[0])


def mm_nt(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b.T`` for 2-D a (M, K) and b (N, K), either of which may be a transposed view."""
    if _use_onednn(a, b):
        return _onednn_a_bt_op(a, b) if torch.compiler.is_compiling() else _onednn_a_bt(a, b)
    return a @ b.t()


def weight_grad(x: torch.Tensor, grad_out: torch.Tensor) -> torch.Tensor:
    """dW = grad_out.T @ x for y = x @ W.T: (N, K) from x (M, K) and grad_out (M, N)."""
    if grad_out.shape[1] >= x.shape[1]:
        # oneDNN runs this reduction over tokens fastest when the wider output side is its
        # "weight" operand, so compute dW.T and transpose when N >= K.
        return mm_nt(x.t(), grad_out.t()).t().contiguous()
    return mm_nt(grad_out.t(), x.t())


class _OneDnnLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        x2 = x.reshape(-1, x.shape[-1])
        ctx.save_for_backward(x2, weight)
        ctx.x_shape = x.shape
        return mm_nt(x2, weight).view(*x.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:  # type: ignore[override]
        x2, weight = ctx.saved_tensors
        gy = grad_out.reshape(-1, weight.shape[0])
        grad_x = mm_nt(gy, weight.t()).view(ctx.x_shape) if ctx.needs_input_grad[0] else None
        grad_w = weight_grad(x2, gy) if ctx.needs_input_grad[1] else None
        return grad_x, grad_w


def linear(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``x @ weight.T`` (no bias), through oneDNN for float32 on CPU, else ``F.linear``."""
    if _use_onednn(x, weight):
        return _OneDnnLinear.apply(x, weight)
    return F.linear(x, weight)
