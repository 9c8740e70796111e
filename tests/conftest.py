"""Shared fixtures."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
VENV_BIN = Path(sys.executable).parent  # pytest's interpreter has the console scripts beside it
# Every stage of the built-in default recipe, in order.
DEFAULT_STAGES = [
    "ingest",
    "normalize",
    "langid",
    "filter",
    "dedup",
    "pii",
    "tokenizer",
    "shards",
    "train",
    "report",
]


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Torch on one thread: on a busy 2-core machine, two threads mostly wait on each other."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` beside the checkout; tests using it skip where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prefect_env(home: Path, **extra: str) -> dict[str, str]:
    """Environment for a private Prefect server and its clients: own home, no UI, no analytics,
    no suffix-list download, and no inherited API URL."""
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
        "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS": "",
        **extra,
    }
    env.pop("PREFECT_API_URL", None)
    return env


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory) -> Iterator[dict[str, str]]:
    """One local Prefect server for the whole session (a temporary server per CLI run costs ~20 s).

    Yields the environment that CLI subprocesses need to use it.
    """
    home = tmp_path_factory.mktemp("prefect-home")
    port = _free_port()
    env = prefect_env(home)
    log = open(home / "server.log", "wb")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen(
        [
            str(VENV_BIN / "prefect"),
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-services",
            "--no-ui",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                if resp.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            log.close()
            raise RuntimeError(f"prefect server did not start: {(home / 'server.log').read_text()[-2000:]}")
        time.sleep(0.5)
    try:
        yield {**env, "PREFECT_API_URL": url, "PREFECT_LOGGING_LEVEL": "WARNING"}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def run_cli(
    args: list[str], env: dict[str, str] | None, cwd: Path | None = None, timeout: float = 600, check: bool = False
) -> subprocess.CompletedProcess:
    """Run the ``refinery`` console script; returns the completed process (output captured)."""
    proc = subprocess.run(
        [str(VENV_BIN / "refinery"), *args], env=env, cwd=cwd or REPO, capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"refinery {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc
