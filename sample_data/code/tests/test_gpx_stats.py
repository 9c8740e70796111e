from datetime import datetime, timedelta, timezone

import pytest

from sprocket.gpx import GPXError, parse_gpx
from sprocket.stats import climbing, smooth, summarise

HEADER = ('<?xml version="1.0"?><gpx version="1.1" creator="test" '
          'xmlns="http://www.topografix.com/GPX/1/1"><trk><name>Test loop</name><trkseg>')
FOOTER = "</trkseg></trk></gpx>"


def make_gpx(points):
    t0 = datetime(2024, 5, 1, 8, 0, tzinfo=timezone.utc)
    body = "".join(
        f'<trkpt lat="{lat}" lon="{lon}"><ele>{ele}</ele>'
        f"<time>{(t0 + timedelta(seconds=s)).isoformat().replace('+00:00', 'Z')}</time></trkpt>"
        for lat, lon, ele, s in points
    )
    return HEADER + body + FOOTER


def test_parse_basic():
    track = parse_gpx(make_gpx([(51.0, 0.0, 10, 0), (51.001, 0.0, 12, 20)]))
    assert track.name == "Test loop"
    assert len(track) == 2
    assert track.points[1].ele == 12
    assert track.start_time.tzinfo is not None


def test_rejects_non_gpx():
    with pytest.raises(GPXError):
        parse_gpx("<html></html>")
    with pytest.raises(GPXError):
        parse_gpx("not xml at all <")


def test_empty_track_is_an_error():
    with pytest.raises(GPXError):
        parse_gpx(HEADER + FOOTER)


def test_moving_time_ignores_stops():
    pts = [(51.0, 0.0, 0, 0), (51.001, 0.0, 0, 20),   # ~111 m in 20 s: moving
           (51.001, 0.0, 0, 200),                     # stopped at the lights for 3 minutes
           (51.002, 0.0, 0, 220)]                     # moving again
    s = summarise(parse_gpx(make_gpx(pts)))
    assert s.moving_s == pytest.approx(40)
    assert s.elapsed_s == pytest.approx(220)
    assert s.distance_m == pytest.approx(222.4, rel=1e-2)


def test_climbing_threshold_ignores_jitter():
    flat_but_noisy = [10, 11, 10, 11, 10, 11, 10]
    assert climbing(flat_but_noisy) == (0.0, 0.0)
    assert climbing([0, 5, 10, 4]) == (10.0, 6.0)


def test_smooth_keeps_length():
    vals = [0, 10, 0, 10, 0]
    out = smooth(vals, 3)
    assert len(out) == len(vals)
    assert out[2] == pytest.approx(20 / 3)
