"""`refinery serve`: serve the deployments of ``prefect.yaml`` from this process (Prefect's
``flow.serve``), so scheduled and triggered runs happen with no work pool or worker to set up."""

from __future__ import annotations

import importlib
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_FILE = REPO_ROOT / "prefect.yaml"
console = Console(stderr=True)


class ServeError(ValueError):
    """A deployment that cannot be served, with a message meant for the user."""


def read_deployments(path: Path) -> list[dict[str, Any]]:
    """The ``deployments`` list of a prefect.yaml (safe-loaded: no YAML tags that build objects)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ServeError(f"{path}: {err}") from None
    deployments = data.get("deployments")
    if not isinstance(deployments, list) or not deployments:
        raise ServeError(f"{path}: no `deployments` list")
    return deployments


def load_entrypoint(entrypoint: str) -> Any:
    """``flows/deployments.py:curate_job`` -> the flow object, imported as a module of this package."""
    file, _, name = entrypoint.partition(":")
    module = file.removesuffix(".py").replace("/", ".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise ServeError(f"entrypoint {entrypoint!r} cannot be loaded: {err}") from None


def schedules_of(spec: dict[str, Any]) -> list[Any]:
    """prefect.yaml ``schedules`` entries (cron / interval / rrule) as Prefect schedule objects."""
    from prefect.schedules import Cron, Interval, RRule

    out = []
    for s in spec.get("schedules") or []:
        active = s.get("active", True)
        if "cron" in s:
            out.append(Cron(s["cron"], timezone=s.get("timezone"), active=active))
        elif "interval" in s:
            out.append(Interval(timedelta(seconds=float(s["interval"])), timezone=s.get("timezone"), active=active))
        elif "rrule" in s:
            out.append(RRule(s["rrule"], timezone=s.get("timezone"), active=active))
        else:
            raise ServeError(f"deployment {spec.get('name')!r}: unknown schedule {s!r}")
    return out


def build_deployment(spec: dict[str, Any], overrides: dict[str, Any], schedules: list[Any] | None) -> Any:
    """A runner deployment for one prefect.yaml entry; curation parameters are validated here, before
    anything is served, so a typo in prefect.yaml or on the command line fails at once."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig

    from flows.deployments import CurateJob

    flow_obj = load_entrypoint(spec["entrypoint"])
    params = dict(spec.get("parameters") or {})
    if "job" in params or overrides:
        job = {**(params.get("job") or {}), **overrides}
        try:
            params["job"] = CurateJob(**job).model_dump(mode="json", exclude_none=True)
        except ValueError as err:
            raise ServeError(f"deployment {spec['name']!r}: {err}") from None
    limit = spec.get("concurrency_limit")
    return flow_obj.to_deployment(
        name=spec["name"],
        description=" ".join(str(spec.get("description") or "").split()) or None,
        tags=list(spec.get("tags") or []),
        parameters=params,
        schedules=schedules if schedules is not None else schedules_of(spec),
        concurrency_limit=ConcurrencyLimitConfig(**limit) if isinstance(limit, dict) else limit,
    )


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        deployment: Annotated[
            list[str] | None, typer.Option("--deployment", "-d", help="serve only these prefect.yaml entries")
        ] = None,
        file: Annotated[Path, typer.Option("--file", help="the prefect.yaml to read")] = DEFAULT_FILE,
        cron: Annotated[str | None, typer.Option(help="replace the schedules with this cron string")] = None,
        interval: Annotated[
            float | None, typer.Option(min=1, help="replace the schedules with one every N seconds")
        ] = None,
        no_schedule: Annotated[bool, typer.Option("--no-schedule", help="triggered runs only")] = False,
        recipe: Annotated[str | None, typer.Option(help="curation deployments: recipe name or file")] = None,
        inputs: Annotated[list[str] | None, typer.Option("--input", "-i", help="curation: input (repeatable)")] = None,
        out: Annotated[str | None, typer.Option(help="curation deployments: run folder")] = None,
        seed: Annotated[int | None, typer.Option(help="curation deployments: seed")] = None,
        workers: Annotated[int | None, typer.Option(min=1, help="curation: local Dask cluster of N workers")] = None,
        dask_address: Annotated[str | None, typer.Option(help="curation: running Dask cluster address")] = None,
        limit: Annotated[int | None, typer.Option(min=1, help="at most this many flow runs at once")] = None,
    ) -> None:
        """Serve prefect.yaml's deployments from this process until interrupted (Prefect's flow.serve).

        Needs a Prefect API: start `prefect server start` and set PREFECT_API_URL (see README).
        """
        import os

        from prefect import serve as prefect_serve

        if not os.environ.get("PREFECT_API_URL"):
            console.print(
                "[yellow]PREFECT_API_URL is not set:[/] Prefect will start a temporary server that lives only as "
                "long as this process. Start `prefect server start` and export PREFECT_API_URL to see runs in the UI."
            )
        try:
            specs = read_deployments(file)
        except ServeError as err:
            console.print(f"[bold red]error:[/] {err}")
            raise typer.Exit(2) from None
        names = [s.get("name") for s in specs]
        unknown = sorted(set(deployment or []) - set(names))
        if unknown:
            console.print(f"[bold red]error:[/] no deployment {', '.join(unknown)} in {file} (has: {', '.join(names)})")
            raise typer.Exit(2)
        overrides = {
            k: v
            for k, v in {
                "recipe": recipe,
                "inputs": inputs,
                "out": out,
                "seed": seed,
                "workers": workers,
                "dask_address": dask_address,
            }.items()
            if v
        }
        schedules: list[Any] | None = None
        if no_schedule:
            schedules = []
        elif cron or interval:
            from prefect.schedules import Cron, Interval

            schedules = [Cron(cron)] if cron else [Interval(timedelta(seconds=interval or 0))]
        built = []
        for spec in specs:
            if deployment and spec.get("name") not in deployment:
                continue
            is_curation = spec["entrypoint"].startswith("flows/deployments.py:")
            try:
                built.append(build_deployment(spec, overrides if is_curation else {}, schedules))
            except ServeError as err:
                if deployment:  # asked for by name: a broken entry is an error
                    console.print(f"[bold red]error:[/] {err}")
                    raise typer.Exit(2) from None
                console.print(f"[yellow]skipped:[/] {err}")
        if not built:
            console.print("[bold red]error:[/] nothing to serve")
            raise typer.Exit(2)
        console.print(f"serving {', '.join(d.name for d in built)} from {file}")
        prefect_serve(*built, limit=limit)
