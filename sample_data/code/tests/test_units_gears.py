import pytest

from sprocket.checksum import crc32_py
from sprocket.color import hex_to_rgb, mix, ramp
from sprocket.gears import Gear, overlapping
from sprocket.units import format_distance, format_duration, parse_tyre_size


def test_format_distance():
    assert format_distance(12345) == "12.3 km"
    assert format_distance(850) == "850 m"
    assert format_distance(16093.44, imperial=True) == "10.0 mi"


def test_format_duration():
    assert format_duration(3900) == "1h 05m"
    assert format_duration(250) == "4m 10s"


@pytest.mark.parametrize("spec,mm", [("28-622", 2130.4), ("700x28C", 2130.4), ("2096", 2096.0)])
def test_tyre_sizes(spec, mm):
    assert parse_tyre_size(spec) == pytest.approx(mm, abs=0.5)


def test_gear_development_uses_table():
    assert Gear(50, 25).development_m() == pytest.approx(4.192, abs=1e-3)


def test_overlapping_finds_duplicates():
    pairs = overlapping([34, 50], [11, 12, 13, 14, 15, 17, 19, 21, 24, 28])
    assert any(a.cog != b.cog for a, b in pairs)


def test_crc32_matches_zlib():
    import zlib

    for data in (b"", b"a", b"The quick brown fox jumps over the lazy dog", bytes(range(256))):
        assert crc32_py(data) == zlib.crc32(data)


def test_colour_mix_endpoints():
    assert mix("#ff0000", "#0000ff", 0) == "#ff0000"
    assert mix("#ff0000", "#0000ff", 1) == "#0000ff"
    assert hex_to_rgb("#abc") == (0xAA, 0xBB, 0xCC)
    assert len(ramp(["#000000", "#ffffff"], 5)) == 5
