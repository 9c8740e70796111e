"""User errors on the command line are a clean message and exit 2, never a traceback, for every command.

The commands are enumerated from the typer app, so a new command is covered without editing this file:
each gets an unknown option, each of its numeric options a non-number and a value below its minimum, and
(when it has required parameters) no arguments at all. Each command must also have its own cases in CASES
(missing paths, bad NAME=PATH, unknown recipe or plan, a file where a folder is expected, ...):
``test_every_command_has_its_own_cases`` fails until a new command gets some. They run in-process through
typer's CliRunner; a few run the real ``refinery`` console script.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import time
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from flows.cli import app
from flows.cli_options import EXIT_USAGE, PrefectApi
from tests.conftest import REPO, prefect_env, run_cli

ROOT = typer.main.get_command(app)


def _commands(group: Any = ROOT, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """Every command of the app, subcommands of nested groups included, by its path of names."""
    found: dict[tuple[str, ...], Any] = {}
    for name, cmd in sorted(getattr(group, "commands", {}).items()):
        if getattr(cmd, "commands", None) is not None:
            found.update(_commands(cmd, (*prefix, name)))
        else:
            found[(*prefix, name)] = cmd
    return found


COMMANDS = _commands()


def _base_type(callback: Any, name: str) -> Any:
    """The Python type of a command parameter, without Optional, list[...] or Annotated."""
    hint = typing.get_type_hints(inspect.unwrap(callback)).get(name)
    while typing.get_origin(hint) in (list, typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


def _filled(cmd: Any, skip: str) -> list[str]:
    """Values for the command's required parameters (but ``skip``), so that parsing reaches the one under test."""
    args: list[str] = []
    for p in cmd.params:
        if p.required and p.name != skip:
            value = str(REPO / "README.md") if _base_type(cmd.callback, p.name) is Path else "x"
            args += [p.opts[0], value] if p.opts and p.opts[0].startswith("-") else [value]
    return args


def _generic_cases() -> Iterator[Any]:
    for path, cmd in COMMANDS.items():
        name = " ".join(path)
        yield pytest.param([*path, "--no-such-option"], "--no-such-option", id=f"{name}:unknown-option")
        if any(p.required for p in cmd.params):
            yield pytest.param(list(path), "Missing", id=f"{name}:no-arguments")
        for p in cmd.params:
            if not p.opts or not p.opts[0].startswith("-") or _base_type(cmd.callback, p.name) not in (int, float):
                continue
            option = p.opts[0]
            rest = _filled(cmd, p.name)
            yield pytest.param([*path, *rest, option, "abc"], option, id=f"{name}:{option}=abc")
            if getattr(p, "min", None) is not None:
                below = str(p.min - 1)
                yield pytest.param([*path, *rest, option, below], option, id=f"{name}:{option}={below}")


# Per command: (arguments, a fragment of the message). Placeholders name the files of the ``bad`` fixture.
CASES: dict[str, list[tuple[list[str], str]]] = {
    "run": [
        (["--source", "foo=x"], "unknown source 'foo'"),
        (["--source", "nothing"], "--source expects NAME=PATH"),
        (["--source", "web="], "--source expects NAME=PATH"),
        (["--input", "/no/such/path"], "does not exist"),
        (["--input", "{tmp}/*.nomatch"], "matches no file"),
        (["--recipe", "no-such-recipe"], "no-such-recipe"),
        (["--recipe", "{bad_yaml}", "--input", "{data}", "--out", "{tmp}/o1"], "not valid YAML"),
        (["--recipe", "{bad_recipe}", "--input", "{data}", "--out", "{tmp}/o2"], "unknown stage 'nosuchstage'"),
        (["--input", "{data}", "--out", "{file}"], "is a file, not a folder"),
        (["--input", "{data}", "--out", "{tmp}/o3", "--cache-dir", "{file}"], "is a file, not a folder"),
        (["--input", "{data}", "--out", "{tmp}/o4", "--workers", "2", "--dask-address", "tcp://h:1"], "not both"),
        (["--input", "{data}", "--out", "{tmp}/o5", "--seed", "-5"], "seed"),
        (["--input", "{data}", "--out", "{data}/out"], "inside the input"),
    ],
    "recipes": [(["extra"], "unexpected extra argument")],
    "explain": [(["nosuchstage"], "unknown stage 'nosuchstage'"), (["dedup", "extra"], "unexpected extra argument")],
    "schema": [(["--out", "{tmp}"], "cannot write"), (["--out", "{file}/schema.json"], "cannot write")],
    "show-recipe": [
        (["no-such-recipe"], "neither a file nor a built-in recipe"),
        (["{bad_yaml}"], "not valid YAML"),
        (["{bad_recipe}"], "unknown stage 'nosuchstage'"),
        (["{file}"], "a recipe must be a mapping"),
    ],
    "ablate": [
        (["--plan", "no-such-plan"], "neither a file nor a built-in plan"),
        (["--plan", "{file}"], "invalid plan"),
        (["--plan", "{bad_yaml}"], "not valid YAML"),
        (["--plan", "quality", "--source", "foo=x"], "unknown source 'foo'"),
        (["--plan", "quality", "--eval-input", "nothing"], "--eval-input expects NAME=PATH"),
        (["--plan", "quality", "--eval-input", "web=/no/such"], "does not exist"),
        (["--plan", "quality", "--input", "/no/such"], "does not exist"),
        (["--plan", "quality", "--input", "{data}", "--out", "{file}"], "is a file, not a folder"),
        (["--plan", "quality", "--preset", "nosuch", "--input", "{data}", "--out", "{tmp}/a1"], "unknown preset"),
    ],
    "plans": [(["extra"], "unexpected extra argument")],
    "inspect": [
        (["/no/such"], "is not a run folder"),
        (["{file}"], "is not a run folder"),
        (["{empty}"], "is not a run folder"),
        (["{bad_manifest}"], "cannot be read"),
        (["{run}", "--stage", "pii"], "this run has no pii stage"),
    ],
    "preview": [
        (["{run}", "--stat", "gopher_word_count", "--at", "abc"], "--at expects comma-separated numbers"),
        (["{run}", "--stat", "gopher_word_count", "--op", "=="], "--op must be one of"),
        (["{run}", "--stat", "gopher_word_count"], "no documents in"),
        (["{file}", "--stat", "gopher_word_count"], "is not a run folder"),
        (["/no/such", "--stat", "gopher_word_count"], "is not a run folder"),
    ],
    "train-quality": [
        (["--positive", "/no/such", "--negative", "{data}"], "input not found: /no/such"),
        (["--positive", "{file}", "--negative", "{file}", "--out", "{tmp}/q.ftz"], "need texts in both classes"),
        (["--positive", "{data}", "--negative", "{data}", "--out", "{empty}"], "is a folder"),
        (["--positive", "{data}", "--negative", "{data}", "--epoch", "0"], "epoch"),
    ],
    "train-lm": [
        (["--reference", "/no/such.txt"], "input not found: /no/such.txt"),
        (["--reference", "{empty}", "--out", "{tmp}/lm.npz"], "no reference text found"),
        (["--reference", "{data}", "--out", "{file}/lm.npz"], "is a file, not a folder"),
    ],
    "generate": [
        (["--model", "{run}", "--prompt", "The"], "not a trained model folder"),
        (["--model", "/no/such"], "not a trained model folder"),
        (["--model", "{bad_model}"], "cannot be loaded"),
    ],
    "export-hf": [
        (["--model", "{run}", "--out", "{tmp}/hf"], "not a trained model folder"),
        (["--model", "{bad_model}", "--out", "{tmp}/hf"], "cannot be exported"),
        (["--model", "{file}", "--out", "{tmp}/hf"], "not a trained model folder"),
    ],
    "model-presets": [(["--vocab-size", "0"], "--vocab-size")],
    "serve": [
        (["--file", "/no/such.yaml"], "No such file"),
        (["--file", "{bad_yaml}"], "while parsing"),
        (["--file", "{file}"], "no `deployments` list"),
        (["--file", "{bad_deployments}"], "is not a mapping with a `name` and an `entrypoint`"),
        (["-d", "no-such-deployment"], "no deployment no-such-deployment"),
        (["-d", "curate-nightly", "--recipe", "no-such-recipe"], "no-such-recipe"),
        (["--input", "foo=x"], "unknown source 'foo'"),
        (["-d", "curate-nightly", "--cron", "not a cron"], "Invalid cron string"),
    ],
}


@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Files and folders that commands must refuse, by placeholder name."""
    tmp = tmp_path_factory.mktemp("bad")
    places = {
        "tmp": tmp,
        "file": tmp / "file.txt",
        "empty": tmp / "empty",
        "run": tmp / "run",
        "data": tmp / "data",
        "bad_yaml": tmp / "bad.yaml",
        "bad_recipe": tmp / "recipe.yaml",
        "bad_manifest": tmp / "bad-manifest",
        "bad_model": tmp / "bad-model",
        "bad_deployments": tmp / "deployments.yaml",
    }
    places["file"].write_text("hello")
    places["empty"].mkdir()
    (places["run"] / "documents").mkdir(parents=True)  # a run folder with no documents and no model
    (places["run"] / "manifest.json").write_text(json.dumps({"stages": [{"name": "ingest"}]}))
    places["data"].mkdir()
    (places["data"] / "a.txt").write_text("A short English document about the weather. " * 5)
    places["bad_yaml"].write_text("stages: [ingest\n  - :")
    places["bad_recipe"].write_text("stages:\n  - ingest\n  - nosuchstage\n")
    places["bad_manifest"].mkdir()
    (places["bad_manifest"] / "manifest.json").write_text("{not json")
    places["bad_model"].mkdir()  # the right file names, holding something else
    for name, text in (("config.json", "{}"), ("model.safetensors", "junk"), ("tokenizer.model", "junk")):
        (places["bad_model"] / name).write_text(text)
    places["bad_deployments"].write_text("deployments:\n  - 3\n")
    return {k: str(v) for k, v in places.items()}


@pytest.fixture(autouse=True)
def _nothing_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process cases start no Prefect server and serve nothing: reaching either is a failure, not a hang."""

    def no_serving(*_: Any) -> None:
        raise AssertionError("serve got as far as serving")

    monkeypatch.setattr("flows.cli.start_prefect_api", lambda: PrefectApi())
    monkeypatch.setattr("flows.commands.serve.serve_until_signalled", no_serving)


def _flat(text: str) -> str:
    """Output with rich's box borders and line breaks folded away."""
    return " ".join(text.replace("│", " ").split())


def _assert_user_error(result: Any, message: str) -> None:
    output = result.output
    assert result.exit_code == EXIT_USAGE, (output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in output
    assert message in _flat(output), output


def test_every_command_has_its_own_cases() -> None:
    assert {" ".join(path) for path in COMMANDS} == set(CASES)


@pytest.mark.parametrize(("args", "message"), list(_generic_cases()))
def test_bad_option_values_exit_2(args: list[str], message: str) -> None:
    _assert_user_error(CliRunner().invoke(app, args), message)


@pytest.mark.parametrize(
    ("command", "args", "message"),
    [pytest.param(c, a, m, id=f"{c}:{' '.join(a)}") for c, cases in CASES.items() for a, m in cases],
)
def test_bad_arguments_exit_2_with_a_message(bad: dict[str, str], command: str, args: list[str], message: str) -> None:
    filled = [a.format(**bad) for a in args]
    _assert_user_error(CliRunner().invoke(app, [*command.split(), *filled]), message)


@pytest.mark.parametrize("path", list(COMMANDS), ids=" ".join)
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--source", "foo=x"],
        ["preview", "{run}", "--stat", "gopher_word_count", "--at", "abc"],
        ["export-hf", "--model", "{run}", "--out", "{tmp}/hf-sub"],
        ["inspect", "{file}"],
    ],
    ids=lambda a: a[0],
)
def test_console_script_user_error_is_one_paragraph_on_stderr(bad: dict[str, str], args: list[str]) -> None:
    proc = run_cli([a.format(**bad) for a in args], env=None, timeout=120)
    assert proc.returncode == EXIT_USAGE, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.stderr.startswith("error: ") and "\n\n" not in proc.stderr.strip(), proc.stderr


def _servers_of(home: Path) -> list[Any]:
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if "uvicorn" in " ".join(proc.info["cmdline"] or []) and proc.environ().get("PREFECT_HOME") == str(home):
                found.append(proc)
        except psutil.Error:
            pass
    return found


def test_a_recipe_error_found_after_prefect_starts_leaves_no_server(bad: dict[str, str], tmp_path: Path) -> None:
    """`run` boots Prefect's temporary server while the recipe's stages validate; a bad stage still exits 2,
    and the server it started is stopped."""
    home = tmp_path / "prefect-home"
    home.mkdir()
    recipe = tmp_path / "recipe.yaml"  # the pii stage's code takes seconds to import: the server is up by then
    recipe.write_text("stages:\n  - ingest\n  - pii\n  - nosuchstage\n")
    args = ["run", "--recipe", str(recipe), "--input", bad["data"], "--out", str(tmp_path / "out")]
    proc = run_cli(args, env=prefect_env(home), timeout=300)
    assert proc.returncode == EXIT_USAGE, (proc.stdout, proc.stderr)
    assert "unknown stage 'nosuchstage'" in _flat(proc.stderr)
    assert "Traceback" not in proc.stdout + proc.stderr
    deadline = time.monotonic() + 10
    while _servers_of(home) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _servers_of(home)
    assert not (tmp_path / "out").exists()


def test_recipes_lists_the_stages_load_recipe_runs() -> None:
    """`refinery recipes` outlines recipes without importing stage code; the outline is what load_recipe runs."""
    from flows.recipe import builtin_recipes, load_recipe

    result = CliRunner().invoke(app, ["recipes"])
    assert result.exit_code == 0, result.output
    expected = [f"{n}: {' -> '.join(s.name for s in load_recipe(n).stages)}" for n in builtin_recipes()]
    assert result.output.splitlines() == expected


def test_the_cli_module_imports_no_heavy_library() -> None:
    """`refinery --help` and `refinery recipes` stay fast: importing the CLI loads none of these."""
    heavy = ["prefect", "polars", "torch", "presidio_analyzer", "numpy", "pyarrow", "pipeline.ingest", "pydantic"]
    code = f"import sys, flows.cli; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_version_prints_the_version_and_code_fingerprint() -> None:
    import pipeline
    from flows.cache import code_version

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"refinery {pipeline.__version__} (code {code_version()})"
