"""Generation strategies: each one's defining property, plus the `refinery generate` command."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model.config import ModelConfig
from model.generate import GenerationConfig, beam_search, generate, process_logits
from model.model import Transformer

VOCAB = 48

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model() -> Transformer:
    torch.manual_seed(0)
    net = Transformer(
        ModelConfig(
            vocab_size=VOCAB, n_layer=2, d_model=32, n_head=4, n_kv_head=2, max_seq_len=24, tie_embeddings=False
        )
    )
    with torch.no_grad():  # sharpen the untrained model so its choices are not near-ties
        net.lm_head.weight.mul_(10)
    return net.eval()


PROMPT = [1, 5, 9, 3]


def test_greedy_is_argmax(model: Transformer) -> None:
    out = generate(model, PROMPT, GenerationConfig(max_new_tokens=10, greedy=True))
    seq = list(PROMPT)
    for token in out:
        with torch.no_grad():
            logits = model(torch.tensor([seq]))[0][0, -1]
        assert token == int(logits.argmax())
        seq.append(token)
    assert len(out) == 10
    assert out == generate(model, PROMPT, GenerationConfig(max_new_tokens=10, temperature=0.0))


def test_context_longer_than_model_is_cropped(model: Transformer) -> None:
    out = generate(model, list(range(1, 30)), GenerationConfig(max_new_tokens=5, greedy=True))
    assert len(out) == 5


def test_top_k_never_samples_outside_k(model: Transformer) -> None:
    with torch.no_grad():
        logits = model(torch.tensor([PROMPT]))[0][0, -1]
    allowed = set(torch.topk(logits, 3).indices.tolist())
    firsts = {
        generate(model, PROMPT, GenerationConfig(max_new_tokens=1, top_k=3, temperature=5.0, seed=s))[0]
        for s in range(60)
    }
    assert firsts <= allowed and len(firsts) > 1  # high temperature: more than one of the k shows up


def test_top_p_keeps_the_nucleus() -> None:
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    kept = process_logits(logits, [], [], GenerationConfig(top_p=0.7)).isfinite()
    assert kept.tolist() == [True, True, False, False]  # 0.5 < 0.7, 0.5 + 0.3 reaches it
    assert process_logits(logits, [], [], GenerationConfig(top_p=0.4)).isfinite().tolist() == [
        True,
        False,
        False,
        False,
    ]


def test_temperature_scales_logits() -> None:
    logits = torch.tensor([2.0, -1.0, 0.5])
    torch.testing.assert_close(process_logits(logits, [], [], GenerationConfig(temperature=0.5)), logits * 2)


def test_sampling_is_seeded(model: Transformer) -> None:
    a = generate(model, PROMPT, GenerationConfig(max_new_tokens=8, temperature=3.0, seed=1))
    b = generate(model, PROMPT, GenerationConfig(max_new_tokens=8, temperature=3.0, seed=1))
    c = generate(model, PROMPT, GenerationConfig(max_new_tokens=8, temperature=3.0, seed=2))
    assert a == b and a != c


def test_stop_sequence_and_eos_end_the_output(model: Transformer) -> None:
    full = generate(model, PROMPT, GenerationConfig(max_new_tokens=12, greedy=True))
    stop = full[3:5]
    out = generate(model, PROMPT, GenerationConfig(max_new_tokens=12, greedy=True, stop_sequences=[stop]))
    first = next(i for i in range(len(full) - 1) if full[i : i + 2] == stop)
    assert out == full[:first]
    out = generate(model, PROMPT, GenerationConfig(max_new_tokens=12, greedy=True, eos_id=full[2]))
    assert out == full[: full.index(full[2])]


def test_repetition_penalty_as_specified() -> None:
    logits = torch.tensor([2.0, -2.0, 1.0, 0.5])
    out = process_logits(logits, [0, 1], [], GenerationConfig(repetition_penalty=2.0, temperature=1.0))
    # Seen tokens: positive logits divided, negative multiplied; unseen untouched.
    assert out.tolist() == [1.0, -4.0, 1.0, 0.5]


def test_frequency_and_presence_penalties_as_specified() -> None:
    logits = torch.zeros(5)
    cfg = GenerationConfig(frequency_penalty=0.5, presence_penalty=1.0)
    out = process_logits(logits, [4, 4, 4, 2, 2, 2], [2, 2, 2, 3], cfg)  # only generated tokens count
    assert out.tolist() == [0.0, 0.0, -(0.5 * 3 + 1.0), -(0.5 * 1 + 1.0), 0.0]
    probs = out.softmax(-1)
    assert probs[2] < probs[3] < probs[0]


def test_beam_search_with_one_beam_is_greedy(model: Transformer) -> None:
    greedy = generate(model, PROMPT, GenerationConfig(max_new_tokens=10, greedy=True))
    assert beam_search(model, PROMPT, GenerationConfig(max_new_tokens=10, num_beams=1)) == greedy
    eos = greedy[4]
    cfg = dict(max_new_tokens=10, eos_id=eos)
    assert beam_search(model, PROMPT, GenerationConfig(num_beams=1, **cfg)) == generate(
        model, PROMPT, GenerationConfig(greedy=True, **cfg)
    )


def test_beam_search_finds_a_likelier_sequence(model: Transformer) -> None:
    def logprob(seq: list[int]) -> float:
        with torch.no_grad():
            logp = model(torch.tensor([[*PROMPT, *seq]]))[0][0].log_softmax(-1)
        return sum(float(logp[len(PROMPT) - 1 + i, t]) for i, t in enumerate(seq))

    greedy = generate(model, PROMPT, GenerationConfig(max_new_tokens=6, greedy=True))
    beam = generate(model, PROMPT, GenerationConfig(max_new_tokens=6, num_beams=4))
    assert len(beam) == 6 and logprob(beam) >= logprob(greedy) - 1e-5


def test_length_penalty_changes_preference(model: Transformer) -> None:
    """With an eos that ends some hypotheses early, a strong length penalty prefers longer outputs."""
    greedy = generate(model, PROMPT, GenerationConfig(max_new_tokens=8, greedy=True))
    base = dict(max_new_tokens=8, num_beams=3, eos_id=greedy[1])
    short = generate(model, PROMPT, GenerationConfig(length_penalty=-2.0, **base))
    long = generate(model, PROMPT, GenerationConfig(length_penalty=3.0, **base))
    assert len(long) >= len(short)


def test_generate_command(tmp_path: Path) -> None:
    spm = pytest.importorskip("sentencepiece")
    from typer.testing import CliRunner

    from flows.cli import app
    from model.config import TrainConfig
    from model.data import Manifest
    from model.train import save_checkpoint

    text = tmp_path / "corpus.txt"
    text.write_text("\n".join(["the cat sat on the mat", "a dog ran in the park", "stop here please"] * 50))
    spm.SentencePieceTrainer.train(
        input=str(text),
        model_prefix=str(tmp_path / "tokenizer"),
        vocab_size=40,
        model_type="char",
        bos_id=1,
        eos_id=2,
        pad_id=0,
        unk_id=3,
        minloglevel=2,
    )
    sp = spm.SentencePieceProcessor(model_file=str(tmp_path / "tokenizer.model"))
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    torch.manual_seed(0)
    net = Transformer(
        ModelConfig(vocab_size=sp.vocab_size(), n_layer=1, d_model=32, n_head=2, n_kv_head=1, max_seq_len=64)
    )
    manifest = Manifest(sp.vocab_size(), 1, 2, 0, str(tmp_path / "tokenizer.model"), {})
    save_checkpoint(net, model_dir, TrainConfig(), manifest)
    runner = CliRunner()
    args = ["generate", "--model", str(model_dir), "--prompt", "the cat", "--max-new-tokens", "12", "--seed", "3"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert first.output.startswith("the cat")
    assert runner.invoke(app, args).output == first.output  # seeded
    greedy = runner.invoke(app, [*args, "--greedy"]).output.rstrip("\n")[len("the cat") :]
    assert greedy
    stop = greedy[2:4]
    stopped = runner.invoke(app, [*args, "--greedy", "--stop", stop]).output.rstrip("\n")[len("the cat") :]
    assert stop not in stopped and greedy.startswith(stopped)
    beams = runner.invoke(app, [*args, "--beams", "2", "--length-penalty", "1.2", "--top-k", "5"])
    assert beams.exit_code == 0, beams.output
    out = tmp_path / "hf"
    exported = runner.invoke(app, ["export-hf", "--model", str(model_dir), "--out", str(out)])
    assert exported.exit_code == 0, exported.output
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.model").is_file()
