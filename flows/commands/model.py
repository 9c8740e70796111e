"""`refinery generate` and `refinery export-hf`: use a trained model folder (DIR/model)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from flows.cli_options import fail


def _find_tokenizer(model_dir: Path) -> Path | None:
    """The model folder's own copy, else the path its config names, else the run's tokenizer/; None if none."""
    candidates = [model_dir / "tokenizer.model", model_dir.parent / "tokenizer" / "tokenizer.model"]
    try:
        vocab = json.loads((model_dir / "config.json").read_text(encoding="utf-8")).get("vocab") or {}
        tok = vocab.get("tokenizer") if isinstance(vocab, dict) else None
    except (OSError, ValueError, AttributeError):
        tok = None  # an unreadable config is reported when the model loads
    if isinstance(tok, str) and tok:
        candidates.insert(1, Path(tok))
    return next((path for path in candidates if path.is_file()), None)


def _model_dir(path: Path) -> Path:
    """A trained model folder: ``path`` itself, or a run folder's ``model/``; else exit 2."""
    for candidate in (path, path / "model"):
        if (candidate / "config.json").is_file() and (candidate / "model.safetensors").is_file():
            return candidate
    fail(f"--model {path} is not a trained model folder (no config.json and model.safetensors); e.g. runs/sample/model")


@contextmanager
def _loading(model_dir: Path, what: str = "loaded") -> Iterator[None]:
    """Exit 2 when the model folder's files cannot be read as a model (truncated, from another tool)."""
    from safetensors import SafetensorError

    try:
        yield
    except typer.Exit:  # a RuntimeError too
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, SafetensorError) as err:
        fail(f"--model {model_dir} cannot be {what}: {type(err).__name__}: {err}")


def register(app: typer.Typer) -> None:
    @app.command()
    def generate(
        model: Annotated[Path, typer.Option("--model", help="a trained model folder, e.g. runs/sample/model")],
        prompt: Annotated[str, typer.Option("--prompt", help="text to continue")] = "",
        max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", min=1)] = 64,
        min_new_tokens: Annotated[int, typer.Option("--min-new-tokens", min=0, help="no eos before this")] = 1,
        greedy: Annotated[bool, typer.Option("--greedy", help="always take the most likely token")] = False,
        temperature: Annotated[float, typer.Option("--temperature", min=0.0, help="0 means greedy")] = 1.0,
        top_k: Annotated[int | None, typer.Option("--top-k", min=1)] = None,
        top_p: Annotated[float | None, typer.Option("--top-p", min=0.0, max=1.0)] = None,
        repetition_penalty: Annotated[float, typer.Option("--repetition-penalty", min=0.0)] = 1.0,
        frequency_penalty: Annotated[float, typer.Option("--frequency-penalty")] = 0.0,
        presence_penalty: Annotated[float, typer.Option("--presence-penalty")] = 0.0,
        beams: Annotated[int, typer.Option("--beams", min=1, help="> 1: beam search")] = 1,
        length_penalty: Annotated[float, typer.Option("--length-penalty")] = 1.0,
        stop: Annotated[list[str] | None, typer.Option("--stop", help="stop sequence (repeatable)")] = None,
        seed: Annotated[int, typer.Option("--seed")] = 0,
    ) -> None:
        """Continue PROMPT with a trained model."""
        import sentencepiece as spm

        from model.generate import GenerationConfig, sample_text
        from model.load import load_model

        model = _model_dir(model)
        tokenizer = _find_tokenizer(model)
        if tokenizer is None:
            fail(f"no tokenizer.model found for {model} (beside it, named in its config.json, or in ../tokenizer)")
        with _loading(model):
            net, _ = load_model(model)
            sp = spm.SentencePieceProcessor(model_file=str(tokenizer))
        cfg = GenerationConfig(
            max_new_tokens=max_new_tokens,
            min_new_tokens=min_new_tokens,
            greedy=greedy,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            repetition_penalty=repetition_penalty,
            frequency_penalty=frequency_penalty,
            presence_penalty=presence_penalty,
            num_beams=beams,
            length_penalty=length_penalty,
            seed=seed,
        )
        typer.echo(prompt + sample_text(net, sp, prompt, cfg, stop or []))

    @app.command("export-hf")
    def export_hf_cmd(
        model: Annotated[Path, typer.Option("--model", help="a trained model folder")],
        out: Annotated[Path, typer.Option("--out", help="folder for the LlamaForCausalLM files")],
    ) -> None:
        """Write a Hugging Face LlamaForCausalLM folder (config, safetensors, tokenizer)."""
        import tempfile

        from flows.run_folder import RunFolderError, check_run_folder
        from model.hf_export import export_hf

        model = _model_dir(model)
        try:
            folder = check_run_folder(out, None, [str(model)], kind="hf-export")
        except RunFolderError as err:
            fail(str(err))
        tokenizer = _find_tokenizer(model)  # None: the weights still export; HF users bring their own tokenizer
        # Written beside, then published file by file: --out may be an earlier export, never the user's files.
        with tempfile.TemporaryDirectory(prefix="refinery-export-") as staging:
            with _loading(model, "exported"):
                export_hf(model, Path(staging), tokenizer)
            try:
                folder.claim()
            except RunFolderError as err:
                fail(str(err))
            try:
                folder.publish_tree("", Path(staging))
                folder.finish({"status": "complete", "model": str(model.resolve())})
            finally:
                folder.release()
        typer.echo(f"wrote {out}")

    @app.command("model-presets")
    def model_presets(
        vocab_size: Annotated[int, typer.Option("--vocab-size", min=1)] = 8000,
        untied: Annotated[bool, typer.Option("--untied", help="separate output layer")] = False,
    ) -> None:
        """Print each model preset's shape and parameter count."""
        import torch

        from model.config import PRESETS, ModelConfig
        from model.model import Transformer

        for name in PRESETS:
            cfg = ModelConfig.from_preset(name, vocab_size=vocab_size, tie_embeddings=not untied)
            with torch.device("meta"):  # count without allocating
                net = Transformer(cfg)
            typer.echo(
                f"{name:6s} layers={cfg.n_layer:<3d} d={cfg.d_model:<4d} heads={cfg.n_head}/{cfg.n_kv_head} "
                f"ffn={cfg.ffn_hidden:<5d} params={net.num_parameters() / 1e6:7.2f}M "
                f"(non-embedding {net.num_parameters(exclude_embeddings=True) / 1e6:.2f}M)"
            )
