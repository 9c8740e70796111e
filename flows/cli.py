"""The ``refinery`` command line: ``run``, ``recipes``, ``show-recipe`` here, every other command in ``flows.commands``.

Startup is kept cheap: this module and the command modules import only typer and rich at module level, so
``refinery --help`` and ``refinery recipes`` answer without loading Prefect, polars, torch or the stage code;
each command imports what it needs when it runs. User errors exit 2 through ``flows.cli_options.fail``.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

import flows  # noqa: F401  (sets Prefect environment defaults before Prefect is imported)
from flows import progress as progress_mod
from flows.cli_options import InputsOption, SourcesOption, check_inputs_and_out, fail, input_pairs, start_prefect_api
from flows.commands import register_all

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

SAMPLE_DATA = Path(__file__).resolve().parent.parent / "sample_data"
# The corpus folders of sample_data/ (its _src/ holds the authored sources the containers are built from).
SAMPLE_FOLDERS = ("web", "books", "code", "misc")


class RefineryApp(typer.Typer):
    """The Typer app; run as the ``refinery`` console script (no arguments: it reads ``sys.argv``) it ends the
    process without the interpreter's teardown, which takes seconds once Prefect, torch and presidio are loaded.

    Everything a normal exit does that matters still happens, in the same order: threading's exit calls run
    and non-daemon threads are joined, atexit handlers run (Prefect stops its temporary server, logging
    flushes), then stdout and stderr are flushed. Called with arguments, or from a test's CliRunner, it is a
    plain Typer app.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if args or kwargs:
            return super().__call__(*args, **kwargs)
        try:
            return super().__call__()
        except SystemExit as stop:
            _exit_now(stop.code)


def _exit_now(code: Any) -> None:
    """Exit with ``code`` (SystemExit's meaning) after the steps of Python's own exit that have effects outside
    the process, in its order: ``threading._shutdown`` (the threading atexit calls, where Prefect drains its
    event and log workers, then joins non-daemon threads), the atexit handlers, the final flush."""
    import atexit

    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is None or threading.current_thread() is not threading.main_thread():
        raise SystemExit(code)  # not the interpreter this was written for: exit the normal way
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:
        print(code, file=sys.stderr)
        status = 1
    shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`refinery recipes | head -1`)
            status = status or 120  # what Python's own exit returns when the final flush fails
    os._exit(status)


app = RefineryApp(
    add_completion=False, no_args_is_help=False, help="Refinery: curate text corpora for LLM pretraining."
)


def _print_version(value: bool) -> None:
    if value:
        import pipeline
        from flows.cache import code_version

        typer.echo(f"refinery {pipeline.__version__} (code {code_version()})")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and code fingerprint."
        ),
    ] = False,
) -> None:
    """Refinery: curate text corpora for LLM pretraining."""


class RichProgress(progress_mod.Progress):
    """Stage progress shown as rich progress bars, one per stage."""

    def __init__(self, bar: Progress) -> None:
        self.bar = bar
        self.ids: dict[str, TaskID] = {}
        self.totals: dict[str, int] = {}

    def start(self, stage: str, total: int) -> None:
        self.totals[stage] = max(total, 1)
        self.ids[stage] = self.bar.add_task(stage, total=self.totals[stage])

    def advance(self, stage: str, n: int = 1) -> None:
        if stage in self.ids:
            self.bar.advance(self.ids[stage], n)

    def describe(self, stage: str, text: str) -> None:
        if stage in self.ids:
            self.bar.update(self.ids[stage], description=text)

    def finish(self, stage: str, summary: dict[str, Any]) -> None:
        if stage in self.ids:
            self.bar.update(
                self.ids[stage],
                completed=self.totals[stage],
                description=f"{stage}: {summary['docs_out']:,} kept, {summary['docs_rejected']:,} rejected",
            )


@app.command()
def run(
    recipe: Annotated[str, typer.Option(help="Built-in recipe name or a YAML file.")] = "default",
    inputs: InputsOption = None,
    sources: SourcesOption = None,
    out: Annotated[Path | None, typer.Option(help="Run folder (default runs/sample for the sample data).")] = None,
    cache_dir: Annotated[
        Path | None, typer.Option(help="Work cache (default OUT/cache); share it between runs.")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for every stage that takes one.")] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Map shards over a local Dask cluster of N worker processes.")
    ] = None,
    dask_address: Annotated[
        str | None, typer.Option(help="Map shards over a running Dask cluster (tcp://scheduler:8786).")
    ] = None,
    verbose: Annotated[bool, typer.Option(help="Show Prefect's own logs.")] = False,
) -> None:
    """Run a curation recipe over the inputs and write a run folder."""
    from flows.recipe import RECIPE_DIR, RecipeError, load_recipe, read_named_yaml

    # Cheap checks first (the recipe file, the inputs, the run folder), so that a user error starts nothing.
    try:
        read_named_yaml(recipe, RECIPE_DIR, "recipe", RecipeError)
    except RecipeError as err:
        fail(str(err))
    pairs = input_pairs(inputs, sources)
    if not pairs:
        pairs = [[None, str(SAMPLE_DATA / d)] for d in SAMPLE_FOLDERS]
        out = out or Path("runs/sample")
    out = out or Path("runs/run")
    if workers and dask_address:
        fail("give either --workers or --dask-address, not both")
    check_inputs_and_out(pairs, out, cache_dir, kind="curate")

    if not verbose:  # before Prefect is first imported, which reads its settings once
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    # Prefect's temporary API server boots (a subprocess, seconds) while the recipe's stage code imports.
    api = start_prefect_api()
    try:
        rec = load_recipe(recipe, seed=seed)
    except RecipeError as err:
        api.abandon()
        fail(str(err))
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from flows.curate import curate
    from flows.run_folder import RunFolderError
    from flows.runners import task_runner

    flow_fn = curate.with_options(task_runner=task_runner(workers, dask_address)) if workers or dask_address else curate
    console = Console(stderr=True)
    bar = Progress(
        TextColumn("{task.description:<48}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),  # an ETA, for training above all
        console=console,
        transient=False,
    )
    progress_mod.set_progress(RichProgress(bar))
    console.print(f"[bold]refinery[/] recipe [cyan]{rec.name}[/] -> {out}")
    api.wait()
    try:
        with bar:
            manifest = flow_fn(rec.as_dict(), pairs, str(out), str(cache_dir) if cache_dir else None)
    except RunFolderError as err:  # another run took the folder between the check and the flow
        fail(str(err))
    _summary(manifest, out, console)


def _summary(manifest: dict[str, Any], out: Path, console: Any) -> None:
    """The run's per-stage table on stdout; warnings and the report's path on stderr."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Run summary ({out})")
    for col in ("stage", "docs in", "docs out", "rejected", "seconds", "cached"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    for s in manifest["stages"]:
        table.add_row(
            s["name"],
            f"{s['docs_in']:,}",
            f"{s['docs_out']:,}",
            f"{s['docs_rejected']:,}",
            f"{s['seconds']:.1f}",
            f"{s.get('cached_shards', 0)}/{s.get('shards', 0)}",
        )
    Console().print(table)
    warnings = manifest.get("warnings", 0)
    if warnings:
        console.print(
            f"[yellow]{warnings} warning(s)[/]: unreadable or unsupported inputs are listed in "
            f"{out / 'rejected'} (stage ingest)."
        )
    if (out / "report" / "index.html").is_file():
        console.print(f"Report: {out / 'report' / 'index.html'}")


@app.command()
def recipes() -> None:
    """List the built-in recipes."""
    from flows.recipe import RECIPE_DIR, RecipeError, builtin_recipes, read_named_yaml, recipe_outline

    for name in builtin_recipes():
        _, data = read_named_yaml(name, RECIPE_DIR, "recipe", RecipeError)
        print(f"{name}: {' -> '.join(recipe_outline(data))}")


@app.command("show-recipe")
def show_recipe(recipe: str) -> None:
    """Print a recipe with every parameter, defaults filled in (a valid recipe file: save it and edit it)."""
    import yaml

    from flows.recipe import RecipeError, load_recipe

    try:
        rec = load_recipe(recipe)
    except RecipeError as err:
        fail(str(err))
    print(yaml.safe_dump(rec.as_recipe_file(), sort_keys=False, allow_unicode=True))


@app.command("explain")
def explain_stage(stage: Annotated[str, typer.Argument(help="A stage name, as in `refinery recipes`.")]) -> None:
    """Every parameter of a stage: type, default, bounds and what it does."""
    from rich.console import Console
    from rich.table import Table

    from flows.recipe_schema import explain
    from flows.stages import STAGES

    if stage not in STAGES:
        fail(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")
    table = Table(title=f"stage {stage}", show_lines=False)
    for column in ("parameter", "type", "default", "bounds", "description"):
        table.add_column(column, overflow="fold")
    for row in explain(stage):
        table.add_row(*(row[c] for c in ("parameter", "type", "default", "bounds", "description")))
    Console().print(table)


@app.command("schema")
def recipe_schema(
    out: Annotated[Path | None, typer.Option(help="Write the schema to this file instead of printing it.")] = None,
) -> None:
    """The JSON Schema of recipe files, for editors (e.g. yaml-language-server's `$schema`)."""
    import json

    from flows.recipe_schema import recipe_json_schema

    text = json.dumps(recipe_json_schema(), indent=2) + "\n"
    if out is None:
        print(text, end="")
        return
    try:
        out.write_text(text)
    except OSError as err:
        fail(f"cannot write {out}: {err.strerror or err}")


register_all(app)


def main() -> None:  # pragma: no cover
    """``python -m flows.cli``: the same as the ``refinery`` console script."""
    sys.exit(app())


if __name__ == "__main__":  # pragma: no cover
    main()
