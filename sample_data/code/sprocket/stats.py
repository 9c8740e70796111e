"""Ride statistics: distance, climbing, moving time and speeds."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sprocket.geo import haversine
from sprocket.gpx import Track

# Below this speed (m/s) between two fixes we consider the rider stopped: about 1.8 km/h,
# slow enough that walking a bike up a steep hill still counts as moving.
STOP_SPEED = 0.5
# Gaps longer than this (s) are pauses even if the position changed (a train ride, say).
MAX_GAP = 300.0


@dataclass(frozen=True, slots=True)
class RideStats:
    distance_m: float
    elevation_gain_m: float
    elevation_loss_m: float
    elapsed_s: float
    moving_s: float
    max_speed_ms: float
    points: int

    @property
    def avg_moving_speed_ms(self) -> float:
        return self.distance_m / self.moving_s if self.moving_s > 0 else 0.0

    def as_dict(self) -> dict[str, float]:
        out = asdict(self)
        out["avg_moving_speed_ms"] = self.avg_moving_speed_ms
        return out


def smooth(values: list[float], window: int = 5) -> list[float]:
    """Centred moving average; the window shrinks at the ends rather than padding."""
    if window <= 1 or len(values) < 3:
        return list(values)
    half = window // 2
    out = []
    for i in range(len(values)):
        lo, hi = max(0, i - half), min(len(values), i + half + 1)
        out.append(sum(values[lo:hi]) / (hi - lo))
    return out


def climbing(elevations: list[float], threshold: float = 2.0) -> tuple[float, float]:
    """Total ascent and descent, ignoring wiggles smaller than ``threshold`` metres.

    Raw barometric and GPS elevations jitter by a metre or two; summing every tiny rise would
    report hundreds of metres of climbing on a flat canal path.
    """
    gain = loss = 0.0
    if not elevations:
        return gain, loss
    ref = elevations[0]
    for e in elevations[1:]:
        diff = e - ref
        if diff >= threshold:
            gain += diff
            ref = e
        elif diff <= -threshold:
            loss -= diff
            ref = e
    return gain, loss


def summarise(track: Track, smooth_window: int = 5, stop_speed: float = STOP_SPEED) -> RideStats:
    pts = track.points
    distance = moving = max_speed = 0.0
    for a, b in zip(pts, pts[1:], strict=False):
        d = haversine(a.lat, a.lon, b.lat, b.lon)
        distance += d
        if a.time is None or b.time is None:
            continue
        dt = (b.time - a.time).total_seconds()
        if dt <= 0 or dt > MAX_GAP:
            continue  # duplicate timestamps or a pause
        speed = d / dt
        if speed >= stop_speed:
            moving += dt
            max_speed = max(max_speed, speed)

    eles = [p.ele for p in pts if p.ele is not None]
    gain, loss = climbing(smooth(eles, smooth_window))
    start, end = track.start_time, track.end_time
    elapsed = (end - start).total_seconds() if start and end else 0.0
    return RideStats(
        distance_m=distance,
        elevation_gain_m=gain,
        elevation_loss_m=loss,
        elapsed_s=elapsed,
        moving_s=moving,
        max_speed_ms=max_speed,
        points=len(pts),
    )
