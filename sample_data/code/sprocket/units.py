"""Unit conversion and formatting for people, not machines."""

from __future__ import annotations

KM_PER_MILE = 1.609344
M_PER_FOOT = 0.3048


def ms_to_kmh(v: float) -> float:
    return v * 3.6


def ms_to_mph(v: float) -> float:
    return v * 3.6 / KM_PER_MILE


def format_distance(metres: float, imperial: bool = False) -> str:
    """``12.3 km`` / ``7.6 mi``; short distances in metres or feet."""
    if imperial:
        miles = metres / 1000 / KM_PER_MILE
        return f"{miles:.1f} mi" if miles >= 0.1 else f"{metres / M_PER_FOOT:.0f} ft"
    return f"{metres / 1000:.1f} km" if metres >= 1000 else f"{metres:.0f} m"


def format_duration(seconds: float) -> str:
    """``1h 05m`` for rides, ``4m 10s`` for short efforts."""
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    if h:
        return f"{h}h {m:02d}m"
    return f"{m}m {s:02d}s"


def format_speed(ms: float, imperial: bool = False) -> str:
    return f"{ms_to_mph(ms):.1f} mph" if imperial else f"{ms_to_kmh(ms):.1f} km/h"


def format_elevation(metres: float, imperial: bool = False) -> str:
    return f"{metres / M_PER_FOOT:,.0f} ft" if imperial else f"{metres:,.0f} m"


def parse_tyre_size(spec: str) -> float:
    """Wheel circumference in millimetres from an ISO/ETRTO size such as ``28-622``,
    a French size such as ``700x28C``, or a plain number of millimetres."""
    spec = spec.strip().lower().removesuffix("c")
    import math

    if spec.isdigit():
        return float(spec)
    if "-" in spec:
        width, bead = (float(x) for x in spec.split("-", 1))
    elif spec.startswith("700x"):
        width, bead = float(spec[4:]), 622.0
    elif spec.startswith("650x"):
        width, bead = float(spec[4:]), 584.0
    else:
        raise ValueError(f"unrecognised tyre size: {spec!r}")
    return math.pi * (bead + 2 * width)
