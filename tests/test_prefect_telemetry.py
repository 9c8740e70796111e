"""With Prefect's analytics off (our default), its client telemetry and first-run notice are off too."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

PROBE = (
    "import flows, os; from prefect._internal.analytics.enabled import is_telemetry_enabled;"
    "print(os.environ.get('DO_NOT_TRACK'), is_telemetry_enabled())"
)


def _probe(**env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k not in ("DO_NOT_TRACK", "PREFECT_SERVER_ANALYTICS_ENABLED", "CI")}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE], env={**base, **env}, cwd=REPO, capture_output=True, text=True, check=True
    )
    return proc.stdout.strip()


@pytest.mark.parametrize("setting", [None, "false", "0"])
def test_analytics_off_turns_client_telemetry_off(setting: str | None) -> None:
    env = {} if setting is None else {"PREFECT_SERVER_ANALYTICS_ENABLED": setting}
    assert _probe(**env) == "1 False"


def test_analytics_on_leaves_the_choice_to_the_user() -> None:
    # we set nothing (whether Prefect then tracks also depends on its CI detection)
    assert _probe(PREFECT_SERVER_ANALYTICS_ENABLED="true").split()[0] == "None"
    assert _probe(PREFECT_SERVER_ANALYTICS_ENABLED="true", DO_NOT_TRACK="1") == "1 False"
