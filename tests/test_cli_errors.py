"""User errors on the command line are a clean message and exit 2, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app


def _not_a_model(tmp: Path) -> Path:
    folder = tmp / "run"
    (folder / "documents").mkdir(parents=True)
    return folder


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--source", "foo=x"], "unknown source 'foo'"),
        (["run", "--source", "nothing"], "--source expects NAME=PATH"),
        (["run", "--input", "/no/such/path"], "does not exist"),
        (["run", "--recipe", "no-such-recipe"], "no-such-recipe"),
        (["ablate", "--plan", "quality", "--source", "foo=x"], "unknown source 'foo'"),
        (["preview", "{tmp}", "--stat", "gopher_word_count", "--at", "abc"], "--at expects comma-separated numbers"),
        (["export-hf", "--model", "{model}", "--out", "{tmp}/hf"], "not a trained model folder"),
        (["generate", "--model", "{model}", "--prompt", "The"], "not a trained model folder"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(tmp_path, args, message):
    model = _not_a_model(tmp_path)
    (tmp_path / "documents").mkdir(exist_ok=True)
    (tmp_path / "manifest.json").write_text("{}")
    filled = [a.format(tmp=tmp_path, model=model) for a in args]
    result = CliRunner().invoke(app, filled)
    assert result.exit_code == 2, (result.output, result.exception)
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output
