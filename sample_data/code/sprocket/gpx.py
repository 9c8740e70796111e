"""Minimal GPX 1.1 reader.

Only the parts of the format that bike computers actually write are supported: tracks made of
segments of points with latitude, longitude, optional elevation and optional time. Routes and
waypoints are ignored. Extensions (heart rate, cadence, temperature) are read when they use the
common Garmin TrackPointExtension namespace.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

GPX_NS = "http://www.topografix.com/GPX/1/1"
TPX_NS = "http://www.garmin.com/xmlschemas/TrackPointExtension/v1"
NS = {"g": GPX_NS, "tpx": TPX_NS}


class GPXError(ValueError):
    """Raised for files that are not GPX or contain no usable track."""


@dataclass(frozen=True, slots=True)
class TrackPoint:
    lat: float
    lon: float
    ele: float | None = None
    time: datetime | None = None
    heart_rate: int | None = None
    cadence: int | None = None


@dataclass(slots=True)
class Track:
    name: str = ""
    points: list[TrackPoint] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.points)

    @property
    def start_time(self) -> datetime | None:
        return next((p.time for p in self.points if p.time is not None), None)

    @property
    def end_time(self) -> datetime | None:
        return next((p.time for p in reversed(self.points) if p.time is not None), None)


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    text = text.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    # Naive times in GPX are UTC by specification.
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _int(text: str | None) -> int | None:
    value = _float(text)
    return int(value) if value is not None else None


def parse_gpx(source: str | bytes | Path) -> Track:
    """Parse a GPX document (a path, or the XML itself as str/bytes) into a single Track.

    Multiple tracks and segments are concatenated in document order, which is what every rider
    we have asked expects when a device splits a ride after a pause.
    """
    if isinstance(source, Path):
        source = source.read_bytes()
    try:
        root = ET.fromstring(source)
    except ET.ParseError as exc:
        raise GPXError(f"not well-formed XML: {exc}") from exc
    if root.tag != f"{{{GPX_NS}}}gpx":
        raise GPXError(f"root element is {root.tag!r}, expected GPX 1.1")

    track = Track()
    name = root.find("g:trk/g:name", NS)
    if name is not None and name.text:
        track.name = name.text.strip()

    for pt in root.iterfind("g:trk/g:trkseg/g:trkpt", NS):
        lat, lon = _float(pt.get("lat")), _float(pt.get("lon"))
        if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
            continue
        ext = pt.find("g:extensions/tpx:TrackPointExtension", NS)
        track.points.append(TrackPoint(
            lat=lat,
            lon=lon,
            ele=_float(pt.findtext("g:ele", namespaces=NS)),
            time=_parse_time(pt.findtext("g:time", namespaces=NS)),
            heart_rate=_int(ext.findtext("tpx:hr", namespaces=NS)) if ext is not None else None,
            cadence=_int(ext.findtext("tpx:cad", namespaces=NS)) if ext is not None else None,
        ))

    if not track.points:
        raise GPXError("no track points found")
    return track
