"""`refinery serve`: serve the deployments of ``prefect.yaml`` from this process (Prefect's
``flow.serve``), so scheduled and triggered runs happen with no work pool or worker to set up.

SIGTERM and SIGINT stop it within 10 s (``serve_until_signalled``). Prefect's own handler pauses the
schedules on the way out with retries and waits for in-flight runs, so when the API went down with it
(a container stack stopped, a process group signalled: the temporary server dies too) or a run ignored
its SIGTERM, it stayed for over a minute.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import threading
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from flows.cli_options import error_text, fail

if TYPE_CHECKING:  # asyncio loads when serving starts, not for `refinery --help`
    import asyncio

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_FILE = REPO_ROOT / "prefect.yaml"
console = Console(stderr=True)


class ServeError(ValueError):
    """A deployment that cannot be served, with a message meant for the user."""


def read_deployments(path: Path) -> list[dict[str, Any]]:
    """The ``deployments`` list of a prefect.yaml (safe-loaded: no YAML tags that build objects)."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ServeError(f"{path}: {err}") from None
    deployments = data.get("deployments") if isinstance(data, dict) else None
    if not isinstance(deployments, list) or not deployments:
        raise ServeError(f"{path}: no `deployments` list")
    bad = [
        i
        for i, d in enumerate(deployments)
        if not (isinstance(d, dict) and isinstance(d.get("name"), str) and isinstance(d.get("entrypoint"), str))
    ]
    if bad:
        raise ServeError(f"{path}: deployments[{bad[0]}] is not a mapping with a `name` and an `entrypoint`")
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

    out: list[Any] = []
    for s in spec.get("schedules") or []:
        if not isinstance(s, dict) or not {"cron", "interval", "rrule"} & set(s):
            raise ServeError(f"deployment {spec.get('name')!r}: unknown schedule {s!r}")
        active = s.get("active", True)
        try:
            if "cron" in s:
                out.append(Cron(s["cron"], timezone=s.get("timezone"), active=active))
            elif "interval" in s:
                seconds = timedelta(seconds=float(s["interval"]))
                out.append(Interval(seconds, timezone=s.get("timezone"), active=active))
            else:
                out.append(RRule(s["rrule"], timezone=s.get("timezone"), active=active))
        except (ValueError, TypeError, OverflowError) as err:
            raise ServeError(f"deployment {spec.get('name')!r}: schedule {s!r}: {error_text(err)}") from None
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
            raise ServeError(f"deployment {spec['name']!r}: {error_text(err, 'job')}") from None
    from prefect.exceptions import ParameterTypeError

    limit = spec.get("concurrency_limit")
    try:
        return flow_obj.to_deployment(
            name=spec["name"],
            description=" ".join(str(spec.get("description") or "").split()) or None,
            tags=list(spec.get("tags") or []),
            parameters=params,
            schedules=schedules if schedules is not None else schedules_of(spec),
            concurrency_limit=ConcurrencyLimitConfig(**limit) if isinstance(limit, dict) else limit,
        )
    except (ValueError, TypeError, ParameterTypeError) as err:  # parameters or limits the flow cannot take
        raise ServeError(f"deployment {spec['name']!r}: {error_text(err)}") from None


STOP_GRACE_S = 6.0  # from a signal to a forced exit; the forced exit itself takes at most ~2 s (promise: 10 s)
PAUSE_TIMEOUT_S = 3.0  # pausing the schedules on the way out; the API may be gone
CRASH_TIMEOUT_S = 1.5  # marking killed runs as crashed, on a forced exit


class _Stop:
    """What SIGTERM and SIGINT do while serving: stop the runner once (it cancels in-flight runs), and exit
    by force if that takes longer than STOP_GRACE_S; a second signal forces it at once."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.runner: Any = None
        self.start_task: asyncio.Task[None] | None = None

    def request(self, signum: int, *_: Any) -> None:
        if self.signum is not None:
            _force_exit(signum)
        self.signum = signum
        sys.stderr.write(f"{signal.Signals(signum).name}: stopping (at most {STOP_GRACE_S:.0f} s)\n")
        watchdog = threading.Timer(STOP_GRACE_S, _force_exit, args=(signum,))
        watchdog.daemon = True
        watchdog.start()
        if self.loop is None:  # still registering deployments: nothing runs yet
            raise SystemExit(0)
        self.loop.call_soon_threadsafe(self._stop_runner)

    def _stop_runner(self) -> None:
        import asyncio

        if self.runner.started:
            # Stops polling and cancels in-flight runs (SIGTERM, then Prefect waits for them); start() returns.
            asyncio.ensure_future(self.runner.astop())
        elif self.start_task is not None:
            self.start_task.cancel()  # signalled while the runner was still starting


def _force_exit(signum: int) -> None:
    """A flow run that outlives its SIGTERM, or an API that is gone, holds the stop up: kill the flow-run
    processes, mark their runs crashed (a run left "Running" would hold its deployment's concurrency slot
    for good), end any other child (a temporary Prefect server) and exit now."""
    import asyncio

    import psutil

    children = psutil.Process().children(recursive=True)
    runs: list[str] = []
    for child in children:
        try:
            run_id = child.environ().get("PREFECT__FLOW_RUN_ID")  # set by Prefect for each flow-run process
            if run_id:
                child.kill()
                runs.append(run_id)
        except psutil.Error:
            pass
    if runs:
        try:
            asyncio.run(asyncio.wait_for(_mark_crashed(runs), CRASH_TIMEOUT_S))
        except Exception as err:  # noqa: BLE001 - exiting regardless
            sys.stderr.write(f"could not mark flow runs {runs} crashed: {type(err).__name__}\n")
    for child in children:
        try:
            child.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(children, timeout=0.5)
    for child in alive:
        try:
            child.kill()
        except psutil.Error:
            pass
    sys.stderr.write(f"stopped by force after {STOP_GRACE_S:.0f} s; flow runs killed: {len(runs)}\n")
    sys.stderr.flush()
    os._exit(128 + signum)


async def _mark_crashed(run_ids: list[str]) -> None:
    from prefect.client.orchestration import get_client
    from prefect.states import Crashed

    async with get_client() as client:
        for run_id in run_ids:
            state = Crashed(message="refinery serve was stopped and killed the run")
            await client.set_flow_run_state(run_id, state, force=True)


async def _pause(deployment_ids: list[Any]) -> None:
    """Pause the served schedules (what Prefect's serve does on shutdown), giving up after PAUSE_TIMEOUT_S."""
    import asyncio

    from prefect.client.orchestration import get_client

    try:
        async with asyncio.timeout(PAUSE_TIMEOUT_S), get_client() as client:
            for deployment_id in deployment_ids:
                await client.pause_deployment(deployment_id)
    except Exception as err:  # noqa: BLE001 - a stop must not fail on an API that is gone
        console.print(f"[yellow]schedules left active:[/] the Prefect API did not answer ({type(err).__name__})")


def serve_until_signalled(deployments: list[Any], limit: int | None, banner: str) -> None:
    """Prefect's ``serve(*deployments, limit=limit)``, with a stop on SIGTERM or SIGINT that is bounded in time;
    ``banner`` is printed once the deployments are registered."""
    import asyncio

    from prefect.runner import Runner

    stop = _Stop()

    class _Runner(Runner):
        def handle_sigterm(self, *args: Any, **kwargs: Any) -> None:  # Runner.start installs it for SIGTERM
            stop.request(signal.SIGTERM)

    signal.signal(signal.SIGINT, stop.request)
    signal.signal(signal.SIGTERM, stop.request)
    runner = _Runner(pause_on_shutdown=False, limit=limit)  # paused below, with a time limit
    ids = [runner.add_deployment(d) for d in deployments]
    console.print(f"{banner}; stop with Ctrl-C or SIGTERM", soft_wrap=True)  # one line: tests wait for it

    async def main() -> None:
        stop.loop, stop.runner = asyncio.get_running_loop(), runner
        stop.start_task = asyncio.create_task(runner.start())
        try:
            await stop.start_task
        except asyncio.CancelledError:
            pass
        await _pause(ids)

    asyncio.run(main())


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
        if not os.environ.get("PREFECT_API_URL"):
            console.print(
                "[yellow]PREFECT_API_URL is not set:[/] Prefect will start a temporary server that lives only as "
                "long as this process. Start `prefect server start` and export PREFECT_API_URL to see runs in the UI."
            )
        try:
            specs = read_deployments(file)
        except ServeError as err:
            fail(str(err))
        names = [str(s.get("name")) for s in specs]
        unknown = sorted(set(deployment or []) - set(names))
        if unknown:
            fail(f"no deployment {', '.join(unknown)} in {file} (has: {', '.join(names)})")
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

            try:
                schedules = [Cron(cron)] if cron else [Interval(timedelta(seconds=interval or 0))]
            except (ValueError, OverflowError) as err:
                fail(f"--cron/--interval: {error_text(err)}")
        built = []
        for spec in specs:
            if deployment and spec.get("name") not in deployment:
                continue
            is_curation = spec["entrypoint"].startswith("flows/deployments.py:")
            try:
                built.append(build_deployment(spec, overrides if is_curation else {}, schedules))
            except ServeError as err:
                # Asked for by name, or given curation settings on the command line: a broken entry is an error.
                if deployment or (is_curation and overrides):
                    fail(str(err))
                console.print(f"[yellow]skipped:[/] {err}")
        if not built:
            fail("nothing to serve")
        serve_until_signalled(built, limit, f"serving {', '.join(d.name for d in built)} from {file}")
