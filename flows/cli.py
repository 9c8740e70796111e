"""The ``refinery`` command line."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

import flows  # noqa: F401  (sets Prefect environment defaults before Prefect is imported)
from flows import progress as progress_mod
from flows.cli_options import InputsOption, SourcesOption, fail, input_pairs
from flows.commands import register_all

app = typer.Typer(
    add_completion=False, no_args_is_help=False, help="Refinery: curate text corpora for LLM pretraining."
)
console = Console(stderr=True)
SAMPLE_DATA = Path(__file__).resolve().parent.parent / "sample_data"
# The corpus folders of sample_data/ (its _src/ holds the authored sources the containers are built from).
SAMPLE_FOLDERS = ("web", "books", "code", "misc")


class RichProgress(progress_mod.Progress):
    def __init__(self, bar: Progress):
        self.bar = bar
        self.ids: dict[str, TaskID] = {}
        self.totals: dict[str, int] = {}

    def start(self, stage: str, total: int) -> None:
        self.totals[stage] = max(total, 1)
        self.ids[stage] = self.bar.add_task(stage, total=self.totals[stage])

    def advance(self, stage: str, n: int = 1) -> None:
        if stage in self.ids:
            self.bar.advance(self.ids[stage], n)

    def finish(self, stage: str, summary: dict) -> None:
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
    from flows.recipe import RecipeError, load_recipe
    from pipeline.ingest import discover

    try:
        rec = load_recipe(recipe, seed=seed)
    except RecipeError as err:
        fail(str(err))
    pairs = [(src, path) for src, path in input_pairs(inputs, sources)]
    if not pairs:
        pairs = [(None, str(SAMPLE_DATA / d)) for d in SAMPLE_FOLDERS]
        out = out or Path("runs/sample")
    out = out or Path("runs/run")
    if workers and dask_address:
        fail("give either --workers or --dask-address, not both")
    from flows.run_folder import RunFolderError, check_run_folder

    try:
        discover(pairs)  # fail fast on a missing path, before Prefect starts
        check_run_folder(out, cache_dir, [p for _, p in pairs])
    except (FileNotFoundError, ValueError, RunFolderError) as err:
        fail(str(err))

    if not verbose:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from flows.curate import curate
    from flows.runners import task_runner

    flow_fn = curate.with_options(task_runner=task_runner(workers, dask_address)) if workers or dask_address else curate

    bar = Progress(
        TextColumn("{task.description:<48}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    progress_mod.set_progress(RichProgress(bar))
    console.print(f"[bold]refinery[/] recipe [cyan]{rec.name}[/] -> {out}")
    try:
        with bar:
            manifest = flow_fn(rec.as_dict(), [list(p) for p in pairs], str(out), str(cache_dir) if cache_dir else None)
    except RunFolderError as err:  # another run took the folder between the check and the flow
        fail(str(err))
    _summary(manifest, out)


def _summary(manifest: dict, out: Path) -> None:
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
    from flows.recipe import builtin_recipes, load_recipe

    for name in builtin_recipes():
        rec = load_recipe(name)
        print(f"{name}: {' -> '.join(s.name for s in rec.stages)}")


@app.command("show-recipe")
def show_recipe(recipe: str) -> None:
    """Print a recipe with every parameter, defaults filled in."""
    import yaml

    from flows.recipe import RecipeError, load_recipe

    try:
        rec = load_recipe(recipe)
    except RecipeError as err:
        fail(str(err))
    print(yaml.safe_dump(rec.as_dict(), sort_keys=False))


register_all(app)


def main() -> None:  # pragma: no cover
    sys.exit(app())


if __name__ == "__main__":  # pragma: no cover
    main()
