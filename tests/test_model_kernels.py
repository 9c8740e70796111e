"""The trainer's CPU kernels: oneDNN linear layers and the chunked projection + cross-entropy
must give PyTorch's own results (values and gradients) to float32 rounding."""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F

from model import cpu_gemm
from model import loss as loss_mod
from model.cpu_gemm import linear, set_cpu_gemm
from model.loss import IGNORE_INDEX, linear_cross_entropy


def _grads(fn, *tensors: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    leaves = [t.detach().clone().requires_grad_() for t in tensors]
    out = fn(*leaves)
    # A non-uniform upstream gradient, so a transposed or mis-scaled gradient cannot pass.
    upstream = torch.linspace(-1, 2, out.numel()).view_as(out) if out.ndim else torch.tensor(1.7)
    (out * upstream).sum().backward()
    return out.detach(), [t.grad for t in leaves]


@pytest.mark.parametrize(("n_in", "n_out"), [(64, 192), (96, 32), (48, 48)])
def test_onednn_linear_matches_f_linear(n_in: int, n_out: int) -> None:
    torch.manual_seed(0)
    x, w = torch.randn(3, 37, n_in), torch.randn(n_out, n_in) * 0.1
    ours, (gx, gw) = _grads(linear, x, w)
    ref, (rgx, rgw) = _grads(F.linear, x, w)
    assert ours.shape == (3, 37, n_out)
    for a, b in ((ours, ref), (gx, rgx), (gw, rgw)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    assert gw.is_contiguous()


def test_cpu_gemm_backend_switch_and_validation() -> None:
    x, w = torch.randn(5, 8), torch.randn(4, 8)
    set_cpu_gemm("default")
    try:
        y = linear(x.requires_grad_(), w)
        assert y.grad_fn is not None and "OneDnn" not in type(y.grad_fn).__name__
    finally:
        set_cpu_gemm("onednn")
    if cpu_gemm.ONEDNN_AVAILABLE:
        assert "OneDnn" in type(linear(x, w.requires_grad_()).grad_fn).__name__
    with pytest.raises(ValueError, match="onednn"):
        set_cpu_gemm("mkl-fast")
    # A bad REFINERY_CPU_GEMM fails at import with the same message, not silently.
    import subprocess
    import sys

    env = {**os.environ, "REFINERY_CPU_GEMM": "fast"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cmd = [sys.executable, "-c", "import model.cpu_gemm"]
    proc = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True)
    assert proc.returncode != 0 and "must be one of" in proc.stderr


def _reference_ce(h: torch.Tensor, w: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(h @ w.t(), targets, ignore_index=IGNORE_INDEX)


@pytest.mark.parametrize("ignore", [False, True])
def test_linear_cross_entropy_matches_cross_entropy(monkeypatch: pytest.MonkeyPatch, ignore: bool) -> None:
    torch.manual_seed(1)
    # 7 rows per chunk over 50 rows: several chunks and a ragged last one.
    monkeypatch.setattr(loss_mod, "_chunk_rows", lambda vocab: 7)
    h, w = torch.randn(50, 16), torch.randn(300, 16) * 0.3
    targets = torch.randint(0, 300, (50,))
    if ignore:
        targets[::4] = IGNORE_INDEX
    ours, (gh, gw) = _grads(lambda a, b: linear_cross_entropy(a, b, targets), h, w)
    ref, (rgh, rgw) = _grads(lambda a, b: _reference_ce(a, b, targets), h, w)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gh, rgh, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(gw, rgw, rtol=1e-4, atol=1e-6)
    if ignore:
        assert gh[::4].abs().max() == 0  # ignored rows get no gradient


def test_linear_cross_entropy_without_grad_and_frozen_weight() -> None:
    torch.manual_seed(2)
    h, w, targets = torch.randn(3, 9, 8), torch.randn(40, 8), torch.randint(0, 40, (3, 9))
    with torch.no_grad():
        value = linear_cross_entropy(h, w, targets)
    torch.testing.assert_close(value, _reference_ce(h.flatten(0, 1), w, targets.flatten()))
    # Only h needs a gradient: W's is never computed, h's still matches.
    h.requires_grad_()
    linear_cross_entropy(h, w, targets).backward()
    h_ref = h.detach().clone().requires_grad_()
    _reference_ce(h_ref.flatten(0, 1), w, targets.flatten()).backward()
    assert w.grad is None
    torch.testing.assert_close(h.grad, h_ref.grad, rtol=1e-4, atol=1e-6)


def test_torch_compile_gives_the_eager_loss_and_gradients(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The oneDNN product is an opaque custom op under torch.compile; the chunked loss traces whole."""
    from model.config import ModelConfig
    from model.model import Transformer

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=97, n_layer=1, d_model=32, n_head=2, n_kv_head=1, max_seq_len=16))
    idx, targets = torch.randint(0, 97, (2, 16)), torch.randint(0, 97, (2, 16))
    _, eager = model(idx, targets)
    eager.backward()
    eager_grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    _, compiled = torch.compile(model, fullgraph=True)(idx, targets)
    compiled.backward()
    torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-5)
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, eager_grads[name], rtol=1e-4, atol=1e-5, msg=name)
