"""SQLite storage for rides.

One table, one row per ride. Track points are not stored: the GPX file stays on disk and its
path and CRC are recorded, so the database stays small and can be rebuilt at any time.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS rides (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL DEFAULT '',
    started_at    TEXT,
    path          TEXT NOT NULL,
    crc32         INTEGER NOT NULL UNIQUE,
    distance_m    INTEGER NOT NULL,
    gain_m        INTEGER NOT NULL,
    moving_s      INTEGER NOT NULL,
    elapsed_s     INTEGER NOT NULL,
    max_speed_ms  REAL NOT NULL,
    tags          TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS rides_started ON rides(started_at);
"""


@dataclass(frozen=True, slots=True)
class RideRow:
    id: int
    name: str
    started_at: datetime | None
    distance_m: int
    gain_m: int
    moving_s: int
    tags: tuple[str, ...]


class Store:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path)
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Cursor]:
        cur = self._db.cursor()
        try:
            yield cur
            self._db.commit()
        except Exception:
            self._db.rollback()
            raise
        finally:
            cur.close()

    def has_crc(self, crc: int) -> bool:
        row = self._db.execute("SELECT 1 FROM rides WHERE crc32 = ?", (crc,)).fetchone()
        return row is not None

    def add(self, *, name: str, started_at: datetime | None, path: str, crc: int,
            distance_m: float, gain_m: float, moving_s: float, elapsed_s: float,
            max_speed_ms: float, tags: list[str] | None = None) -> int:
        with self.transaction() as cur:
            cur.execute(
                "INSERT INTO rides (name, started_at, path, crc32, distance_m, gain_m, moving_s,"
                " elapsed_s, max_speed_ms, tags) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (name, started_at.isoformat() if started_at else None, path, crc,
                 round(distance_m), round(gain_m), round(moving_s), round(elapsed_s),
                 max_speed_ms, ",".join(sorted(set(tags or [])))),
            )
            return int(cur.lastrowid or 0)

    def rides(self, year: int | None = None, tag: str | None = None) -> list[RideRow]:
        sql = "SELECT id, name, started_at, distance_m, gain_m, moving_s, tags FROM rides"
        where, args = [], []
        if year is not None:
            where.append("substr(started_at, 1, 4) = ?")
            args.append(f"{year:04d}")
        if tag:
            where.append("(',' || tags || ',') LIKE ?")
            args.append(f"%,{tag},%")
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started_at"
        out = []
        for rid, name, started, dist, gain, moving, tags in self._db.execute(sql, args):
            out.append(RideRow(rid, name, datetime.fromisoformat(started) if started else None,
                               dist, gain, moving, tuple(t for t in tags.split(",") if t)))
        return out

    def totals_by_month(self, year: int) -> dict[int, int]:
        """Distance in metres per calendar month (1-12) for one year; missing months are 0."""
        out = dict.fromkeys(range(1, 13), 0)
        for row in self.rides(year=year):
            if row.started_at:
                out[row.started_at.month] += row.distance_m
        return out
