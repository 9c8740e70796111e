"""Prefect operations: prefect.yaml deployments, `refinery serve` against a real local server (triggered and
scheduled runs, artifacts, persisted results), pydantic-validated parameters, retries on transient I/O."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from tests.conftest import REPO, VENV_BIN, _free_port, prefect_env

SMALL_RECIPE = """
name: ops-small
stages:
  - ingest: {shard_mb: 0.05}
  - normalize: {}
  - filter: {}
"""


def _corpus(root: Path) -> Path:
    from tests.test_e2e import build_corpus

    build_corpus(root / "data")
    return root / "data"


# --- prefect.yaml and parameters -------------------------------------------------------------------------


def test_prefect_yaml_deployments_load_and_validate():
    from flows.commands.serve import load_entrypoint, read_deployments, schedules_of
    from flows.deployments import CurateJob

    specs = {s["name"]: s for s in read_deployments(REPO / "prefect.yaml")}
    assert {"curate-nightly", "curate-cluster", "ablation"} <= set(specs)
    nightly = specs["curate-nightly"]
    assert [s.cron for s in schedules_of(nightly)] == ["0 2 * * *"]
    assert nightly["concurrency_limit"]["limit"] == 1
    for spec in specs.values():
        if spec["entrypoint"] == "flows/ablate.py:ablation_flow" and not (REPO / "flows" / "ablate.py").is_file():
            continue  # the ablation flow lands separately; its entry is already in prefect.yaml
        flow_obj = load_entrypoint(spec["entrypoint"])
        assert hasattr(flow_obj, "to_deployment"), spec["name"]
        if "job" in spec["parameters"]:
            CurateJob(**spec["parameters"]["job"])  # raises on a bad recipe, source or runner choice
    # The pull step makes the folder holding prefect.yaml the working directory of worker runs.
    data = yaml.safe_load((REPO / "prefect.yaml").read_text())
    assert "set_working_directory" in json.dumps(data["pull"])


@pytest.mark.parametrize(
    "job, message",
    [
        ({"recipe": "no-such-recipe", "inputs": ["x"], "out": "o"}, "neither a file nor a built-in recipe"),
        ({"inputs": [], "out": "o"}, "at least 1 item"),
        ({"inputs": ["novel=some/dir"], "out": "o"}, "unknown source"),
        ({"inputs": ["x"], "out": "o", "workers": 2, "dask_address": "tcp://h:8786"}, "not both"),
        ({"inputs": ["x"], "out": "o", "dask_address": "h:8786"}, "tcp://host:8786"),
        ({"inputs": ["x"], "out": "o", "workers": 0}, "greater than or equal to 1"),
        ({"inputs": ["x"], "out": "o", "recipes": "default"}, "Extra inputs are not permitted"),
        ({"inputs": ["x"]}, "out"),
    ],
)
def test_curate_job_parameters_are_validated(job: dict[str, Any], message: str):
    from pydantic import ValidationError

    from flows.deployments import CurateJob

    with pytest.raises(ValidationError) as err:
        CurateJob(**job)
    assert message in str(err.value)


def test_serve_refuses_unknown_deployment_and_bad_parameters(tmp_path):
    from tests.conftest import run_cli

    env = {**os.environ, "PREFECT_API_URL": "http://127.0.0.1:9/api"}  # never reached: it fails before serving
    unknown = run_cli(["serve", "--deployment", "nope"], env=env)
    assert unknown.returncode == 2 and "no deployment nope" in unknown.stderr
    bad = run_cli(["serve", "--deployment", "curate-nightly", "--recipe", "no-such-recipe"], env=env)
    assert bad.returncode == 2 and "no-such-recipe" in bad.stderr


# --- retries ---------------------------------------------------------------------------------------------


def test_retry_policy_is_exponential_and_only_for_transient_errors():
    from flows import tasks

    for t in (tasks.ingest_shard, tasks.doc_stage, tasks.tokenize_task, tasks.train_task):
        assert t.retries == tasks.RETRIES >= 2
        delays = t.retry_delay_seconds
        assert all(b == 2 * a for a, b in zip(delays, delays[1:], strict=False)), delays
        assert t.retry_condition_fn is tasks.is_transient
        assert t.persist_result and "refinery" in t.tags
    assert "refinery-heavy" in tasks.train_task.tags and "refinery-heavy" not in tasks.doc_stage.tags


@pytest.fixture
def api(prefect_server):
    """This process talks to the session's Prefect server (flows run in-process in these tests)."""
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

    with temporary_settings(
        {PREFECT_API_URL: prefect_server["PREFECT_API_URL"], PREFECT_HOME: prefect_server["PREFECT_HOME"]}
    ):
        yield prefect_server


def _doc_shard(tmp_path: Path) -> dict[str, Any]:
    d = tmp_path / "in"
    d.mkdir()
    pl.DataFrame({"id": ["a", "b"], "text": ["Café au lait.", "Plain text."], "source": ["web", "web"]}).write_parquet(
        d / "docs.parquet"
    )
    return {"key": "input-key", "dir": str(d)}


@pytest.mark.slow
def test_transient_io_error_is_retried_and_a_bug_is_not(api, tmp_path, monkeypatch):
    from prefect import flow

    from flows import tasks

    real_read = pl.read_parquet
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError(5, "Input/output error (injected)")
        if failure["bug"]:
            raise ValueError("a deterministic bug (injected)")
        return real_read(*args, **kwargs)

    failure = {"bug": False}
    monkeypatch.setattr(pl, "read_parquet", flaky)
    in_ref = _doc_shard(tmp_path)

    @flow(name="retry-check")
    def one(cache: str) -> Any:
        return tasks.doc_stage.submit("normalize", 0, {}, in_ref, cache).result(raise_on_failure=False)

    start = time.monotonic()
    ref = one(str(tmp_path / "cache"))
    assert isinstance(ref, dict) and ref["docs_out"] == 2, ref
    assert calls["n"] == 2  # failed once with EIO, succeeded on the retry
    assert time.monotonic() - start >= 1.0  # waited for the backoff (2 s, jitter ±50 %)

    calls["n"], failure["bug"] = 0, True
    ref = one(str(tmp_path / "cache2"))
    assert isinstance(ref, ValueError)
    assert calls["n"] == 2  # first the EIO (retried), then the bug: not retried


# --- serve against a real server -------------------------------------------------------------------------


async def _wait_for_deployment(name: str, timeout: float = 90) -> Any:
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    async with get_client() as client:
        while time.monotonic() < deadline:
            try:
                return await client.read_deployment_by_name(name)
            except Exception:  # noqa: BLE001 - not registered yet
                await asyncio.sleep(0.5)
    raise AssertionError(f"deployment {name} never appeared")


async def _wait_for_run(flow_run_id: Any, timeout: float = 180) -> Any:
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    async with get_client() as client:
        while time.monotonic() < deadline:
            run = await client.read_flow_run(flow_run_id)
            if run.state is not None and run.state.is_final():
                return run
            await asyncio.sleep(0.5)
    raise AssertionError(f"flow run {flow_run_id} did not finish")


def _serve(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [str(VENV_BIN / "refinery"), "serve", *args],
        env={**env, "PREFECT_RUNNER_POLL_FREQUENCY": "1"},
        cwd=REPO,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


async def _artifacts_of(flow_run_ids: list[Any]) -> dict[str, Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    async with get_client() as client:
        arts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=flow_run_ids))
        )
    return {a.key: a for a in arts if a.key}


async def _subflow_ids(parent_id: Any) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    async with get_client() as client:
        runs = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent_id]))
        )
    return [r.id for r in runs]


@pytest.mark.slow
def test_serve_triggered_run_completes_with_artifacts_and_results(api, tmp_path):
    from prefect.deployments import run_deployment

    data = _corpus(tmp_path)
    (tmp_path / "small.yaml").write_text(SMALL_RECIPE)
    out = tmp_path / "served"
    proc = _serve(
        [
            "--deployment",
            "curate-nightly",
            "--input",
            str(data),
            "--out",
            str(out),
            "--recipe",
            str(tmp_path / "small.yaml"),
        ],
        api,
        tmp_path / "serve.log",
    )
    try:
        dep = asyncio.run(_wait_for_deployment("refinery-curate-job/curate-nightly"))
        # the schedule and the one-at-a-time limit come from prefect.yaml
        assert [s.schedule.cron for s in dep.schedules] == ["0 2 * * *"]
        assert dep.global_concurrency_limit is not None and dep.global_concurrency_limit.limit == 1
        assert dep.parameters["job"]["out"] == str(out)

        run = run_deployment("refinery-curate-job/curate-nightly", timeout=0)
        run = asyncio.run(_wait_for_run(run.id))
        assert run.state.is_completed(), (run.state, (tmp_path / "serve.log").read_text()[-3000:])
    finally:
        _stop(proc)

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and [s["name"] for s in manifest["stages"]] == [
        "ingest",
        "normalize",
        "filter",
    ]
    # the run's result is persisted as JSON and readable through the API
    result = run.state.result()
    assert result["documents"] == manifest["outputs"]["documents"] and result["out"] == str(out)
    # the UI's per-stage figures: a table per stage, a progress bar at 100 %, a summary
    arts = asyncio.run(_artifacts_of([run.id, *asyncio.run(_subflow_ids(run.id))]))
    for key in ("refinery-ops-small-stage-ingest", "refinery-ops-small-stage-filter", "refinery-ops-small-summary"):
        assert key in arts, sorted(arts)
    rows = json.loads(arts["refinery-ops-small-stage-ingest"].data)
    figures = {r["figure"]: r["value"] for r in rows}
    assert figures["docs_in"] == manifest["stages"][0]["docs_in"]
    assert float(arts["refinery-ops-small-progress"].data) == 100.0


def _scheduler_server(home: Path) -> tuple[subprocess.Popen, dict[str, str]]:
    """A Prefect server with its scheduler service on (the session server runs without services)."""
    import urllib.request

    port = _free_port()
    env = prefect_env(home, PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="2", PREFECT_LOGGING_LEVEL="WARNING")
    proc = subprocess.Popen(
        [str(VENV_BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-ui"],
        env=env,
        stdout=(home / "server.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return proc, {**env, "PREFECT_API_URL": url}
        except OSError:
            time.sleep(0.5)
    _stop(proc)
    raise RuntimeError((home / "server.log").read_text()[-2000:])


@pytest.mark.long
def test_scheduled_run_happens_on_its_own(tmp_path):
    """README's path: `prefect server start`, `refinery serve`, and a run the scheduler makes by itself."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId
    from prefect.settings import PREFECT_API_URL, temporary_settings

    (tmp_path / "home").mkdir()
    server, env = _scheduler_server(tmp_path / "home")
    data = _corpus(tmp_path)
    (tmp_path / "small.yaml").write_text(SMALL_RECIPE)
    out = tmp_path / "scheduled"
    proc = None
    try:
        with temporary_settings({PREFECT_API_URL: env["PREFECT_API_URL"]}):
            proc = _serve(
                ["--deployment", "curate-nightly", "--interval", "5", "--input", str(data), "--out", str(out),
                 "--recipe", str(tmp_path / "small.yaml")],
                env,
                tmp_path / "serve.log",
            )  # fmt: skip
            dep = asyncio.run(_wait_for_deployment("refinery-curate-job/curate-nightly"))

            async def first_scheduled_completed(timeout: float = 180) -> Any:
                deadline = time.monotonic() + timeout
                async with get_client() as client:
                    while time.monotonic() < deadline:
                        runs = await client.read_flow_runs(
                            flow_run_filter=FlowRunFilter(deployment_id=FlowRunFilterDeploymentId(any_=[dep.id]))
                        )
                        done = [r for r in runs if r.auto_scheduled and r.state and r.state.is_completed()]
                        if done:
                            return done[0]
                        await asyncio.sleep(1)
                raise AssertionError("no scheduled run completed")

            run = asyncio.run(first_scheduled_completed())
            assert run.auto_scheduled and run.deployment_id == dep.id
    finally:
        if proc is not None:
            _stop(proc)
        _stop(server)
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"
