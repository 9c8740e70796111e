"""Export rides for the dashboard (JSON) or for spreadsheets (CSV)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable

from sprocket.storage import RideRow

EXPORT_VERSION = 1


def ride_to_dict(row: RideRow) -> dict:
    return {
        "id": row.id,
        "name": row.name,
        "started_at": row.started_at.isoformat() if row.started_at else None,
        "distance_m": row.distance_m,
        "gain_m": row.gain_m,
        "moving_s": row.moving_s,
        "tags": list(row.tags),
    }


def to_json(rows: Iterable[RideRow], year: int | None = None, indent: int | None = None) -> str:
    """The document read by ``web/ts/api.ts``: ``{"version": 1, "year": ..., "rides": [...]}``."""
    doc = {"version": EXPORT_VERSION, "year": year, "rides": [ride_to_dict(r) for r in rows]}
    return json.dumps(doc, indent=indent, ensure_ascii=False, sort_keys=True)


def to_csv(rows: Iterable[RideRow]) -> str:
    """One line per ride; tags joined with semicolons so the file opens cleanly in spreadsheets."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["id", "name", "started_at", "distance_km", "gain_m", "moving_min", "tags"])
    for r in rows:
        writer.writerow([
            r.id,
            r.name,
            r.started_at.isoformat() if r.started_at else "",
            f"{r.distance_m / 1000:.2f}",
            r.gain_m,
            f"{r.moving_s / 60:.1f}",
            ";".join(r.tags),
        ])
    return buf.getvalue()
