from datetime import datetime, timezone

import pytest

from sprocket.config import Config, ConfigError, merge, parse
from sprocket.export import to_csv, to_json
from sprocket.storage import RideRow

SAMPLE = """
# comment
units:
  system: imperial   # miles please
  wheel: 700x32C
elevation:
  smooth_window: 7
dashboard:
  colours: ["#000000", "#ffffff"]
"""


def test_parse_and_merge():
    cfg = Config()
    merge(cfg.values, parse(SAMPLE))
    assert cfg.get("units.system") == "imperial"
    assert cfg.get("elevation.smooth_window") == 7
    assert cfg.get("elevation.threshold_m") == 2.0  # default kept
    assert cfg.get("dashboard.colours") == ["#000000", "#ffffff"]


def test_unknown_key_is_rejected():
    with pytest.raises(ConfigError):
        merge(Config().values, parse("units:\n  colour: red\n"))


def test_exports():
    started = datetime(2024, 5, 1, 8, tzinfo=timezone.utc)
    row = RideRow(1, "Loop", started, 42195, 380, 5400, ("training",))
    assert '"distance_m": 42195' in to_json([row])
    lines = to_csv([row]).splitlines()
    assert lines[0].startswith("id,name")
    assert lines[1].endswith("42.20,380,90.0,training")
