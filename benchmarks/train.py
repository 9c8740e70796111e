"""Training throughput: our Transformer vs HF transformers' LlamaForCausalLM, same shape, one process.

Both models are built at the configuration of ``../shared/bench/hf_llama_train.py`` (6 layers, d=256,
8 heads (MHA), SwiGLU hidden 688, vocab 8000, untied embeddings, seq 256, batch 16, float32, AdamW
lr 3e-4 wd 0.1) and trained on the same random batches. HF runs in-process from our venv (not
through the harness's own venv) so both share the same torch build, threads and machine load. The
two alternate step by step so background load hits both alike. Printed: wall-clock tokens/s of
each, the median of paired step-time ratios and, the figure to trust on a shared machine when run
with ``--threads 1``, the ratio of process CPU seconds per step. ``--compile`` compiles ours
(``TrainConfig.compile``); HF stays eager as in the shared harness.

Both are float32 throughout. Where ours gains: its linear layers run their float32 GEMMs through
oneDNN (``model/cpu_gemm.py``; MKL, which PyTorch's own matmul and so HF use, runs AVX2 kernels on
AMD CPUs), and the output projection + cross-entropy is computed in cached row chunks
(``model/loss.py``). ``--gemm default`` puts our linear layers back on PyTorch's matmul, to show
how much of the ratio each part gives.

    .venv/bin/python benchmarks/train.py [--steps 10 --threads 1 --compile --gemm default]
"""

from __future__ import annotations

import os
import sys

# Run as a script, this folder is sys.path[0]; drop it so sibling benchmark files (benchmarks/tokenize.py)
# cannot shadow standard-library modules, and import the project from the repository root instead.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

from model.config import ModelConfig  # noqa: E402
from model.cpu_gemm import set_cpu_gemm  # noqa: E402
from model.model import Transformer  # noqa: E402
from model.train import make_adamw  # noqa: E402


def build_ours(a: argparse.Namespace) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    cfg = ModelConfig(
        vocab_size=a.vocab,
        n_layer=a.layers,
        d_model=a.hidden,
        n_head=a.heads,
        n_kv_head=a.heads,
        ffn_hidden=a.intermediate,
        max_seq_len=a.seq,
        tie_embeddings=False,
    )
    model = Transformer(cfg).train()
    return model, make_adamw(model, lr=a.lr, weight_decay=0.1)


def build_hf(a: argparse.Namespace) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=a.vocab,
        hidden_size=a.hidden,
        intermediate_size=a.intermediate,
        num_hidden_layers=a.layers,
        num_attention_heads=a.heads,
        num_key_value_heads=a.heads,
        max_position_embeddings=max(a.seq, 2048),
        tie_word_embeddings=False,
        use_cache=False,
    )
    cfg._attn_implementation = "sdpa"
    model = LlamaForCausalLM(cfg).to(torch.float32).train()
    # Exactly as the shared harness: default (foreach) AdamW over all parameters.
    return model, torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--intermediate", type=int, default=688)
    ap.add_argument("--vocab", type=int, default=8000)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--steps", type=int, default=10, help="timed steps per model")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument(
        "--compile", action="store_true", help="torch.compile our model (HF stays eager, as in the harness)"
    )
    ap.add_argument("--gemm", default="onednn", choices=["onednn", "default"], help="our CPU float32 GEMM")
    a = ap.parse_args()
    set_cpu_gemm(a.gemm)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)

    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, a.vocab, (a.batch, a.seq + 1), generator=g)
    inp, tgt = x[:, :-1], x[:, 1:]

    ours, ours_opt = build_ours(a)
    if a.compile:  # compiled once, during the warmup steps (minutes on a busy 2-core machine)
        ours = torch.compile(ours)
    hf, hf_opt = build_hf(a)

    def step_ours() -> float:
        _, loss = ours(inp, tgt)
        loss.backward()
        ours_opt.step()
        ours_opt.zero_grad(set_to_none=True)
        return loss.item()

    def step_hf() -> float:
        # HF shifts labels itself, so pass the unshifted window: same targets as ours.
        loss = hf(input_ids=inp, labels=x[:, : a.seq]).loss
        loss.backward()
        hf_opt.step()
        hf_opt.zero_grad(set_to_none=True)
        return loss.item()

    times: dict[str, list[float]] = {"ours": [], "hf": []}
    cpu: dict[str, list[float]] = {"ours": [], "hf": []}  # process CPU time: robust to being descheduled
    for _ in range(a.warmup):
        step_ours()
        step_hf()
    # Alternate single steps (swapping which goes first) so load spikes hit both alike; the
    # median of the paired ratios is the least noisy figure on a shared machine.
    pairs = []
    for r in range(a.steps):
        order = (("ours", step_ours), ("hf", step_hf)) if r % 2 == 0 else (("hf", step_hf), ("ours", step_ours))
        for name, fn in order:
            t, c = time.perf_counter(), time.process_time()
            fn()
            times[name].append(time.perf_counter() - t)
            cpu[name].append(time.process_time() - c)
        pairs.append(times["hf"][-1] / times["ours"][-1])

    tokens = a.batch * a.seq
    res: dict = {"config": vars(a), "threads": torch.get_num_threads(), "ours_compiled": a.compile, "gemm": a.gemm}
    for name, ts in times.items():
        res[name] = {
            "tokens_per_s_median": round(tokens / statistics.median(ts), 1),
            "tokens_per_s_best": round(tokens / min(ts), 1),
            "step_s": [round(t, 3) for t in ts],
            "cpu_s": [round(t, 3) for t in cpu[name]],
        }
    res["params"] = {
        "ours": sum(p.numel() for p in ours.parameters()),
        "hf": sum(p.numel() for p in hf.parameters()),
    }
    res["ratio_paired_median"] = round(statistics.median(pairs), 3)
    # With one thread, CPU seconds per step is the work itself, whatever else runs on the machine.
    res["ratio_cpu_time_median"] = round(statistics.median(cpu["hf"]) / statistics.median(cpu["ours"]), 3)
    res["ratio_median"] = round(res["ours"]["tokens_per_s_median"] / res["hf"]["tokens_per_s_median"], 3)
    res["ratio_best"] = round(res["ours"]["tokens_per_s_best"] / res["hf"]["tokens_per_s_best"], 3)
    import transformers

    res["versions"] = {"torch": torch.__version__, "transformers": transformers.__version__}
    print(
        f"ours ({'compiled, ' if a.compile else ''}{a.gemm} GEMM): "
        f"{res['ours']['tokens_per_s_median']:.0f} tok/s (best {res['ours']['tokens_per_s_best']:.0f})"
    )
    print(f"HF:   {res['hf']['tokens_per_s_median']:.0f} tok/s (best {res['hf']['tokens_per_s_best']:.0f})")
    print(
        f"ratio ours/HF: {res['ratio_paired_median']:.2f}x (median of paired steps), "
        f"{res['ratio_median']:.2f}x median, {res['ratio_best']:.2f}x best steps, "
        f"{res['ratio_cpu_time_median']:.2f}x CPU time"
    )
    print(json.dumps(res))


if __name__ == "__main__":
    main()
