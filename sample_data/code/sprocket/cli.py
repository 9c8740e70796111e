"""The ``sprocket`` command-line interface."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from sprocket import __version__
from sprocket.checksum import file_crc32
from sprocket.gears import Gear, gear_table, overlapping
from sprocket.gpx import GPXError, parse_gpx
from sprocket.stats import summarise
from sprocket.storage import Store
from sprocket.units import format_distance, format_duration, format_elevation, parse_tyre_size

DEFAULT_DB = Path(os.environ.get("SPROCKET_DB", "~/.local/share/sprocket/rides.db")).expanduser()


def cmd_import(args: argparse.Namespace) -> int:
    store = Store(args.db)
    status = 0
    for name in args.files:
        path = Path(name)
        crc = file_crc32(path)
        if store.has_crc(crc):
            print(f"skip   {path} (already imported)")
            continue
        try:
            track = parse_gpx(path)
        except (GPXError, OSError) as exc:
            print(f"error  {path}: {exc}", file=sys.stderr)
            status = 1
            continue
        s = summarise(track)
        store.add(name=track.name or path.stem, started_at=track.start_time, path=str(path),
                  crc=crc, distance_m=s.distance_m, gain_m=s.elevation_gain_m,
                  moving_s=s.moving_s, elapsed_s=s.elapsed_s, max_speed_ms=s.max_speed_ms,
                  tags=args.tag)
        print(f"added  {path}: {format_distance(s.distance_m)}, "
              f"{format_elevation(s.elevation_gain_m)} up, {format_duration(s.moving_s)} moving")
    store.close()
    return status


def cmd_stats(args: argparse.Namespace) -> int:
    store = Store(args.db)
    rides = store.rides(year=args.year, tag=args.tag)
    if not rides:
        print("no rides")
        return 0
    dist = sum(r.distance_m for r in rides)
    gain = sum(r.gain_m for r in rides)
    moving = sum(r.moving_s for r in rides)
    print(f"{len(rides)} rides, {format_distance(dist, args.imperial)}, "
          f"{format_elevation(gain, args.imperial)} climbed, {format_duration(moving)} moving")
    if args.year:
        months = store.totals_by_month(args.year)
        peak = max(months.values()) or 1
        for m, d in months.items():
            bar = "#" * round(30 * d / peak)
            print(f"  {m:2d} {bar:<30} {format_distance(d, args.imperial)}")
    return 0


def cmd_gears(args: argparse.Namespace) -> int:
    wheel = parse_tyre_size(args.wheel)
    rings = [int(x) for x in args.rings.split(",")]
    cogs = [int(x) for x in args.cogs.split(",")]
    print("      " + "".join(f"{c:>6d}" for c in cogs))
    for r, row in zip(rings, gear_table(rings, cogs, wheel), strict=True):
        print(f"{r:>4d}  " + "".join(f"{v:6.2f}" for v in row))
    dup = overlapping(rings, cogs)
    if dup:
        print(f"\n{len(dup)} near-duplicate gear pairs, e.g. "
              f"{dup[0][0].chainring}x{dup[0][0].cog} ~ {dup[0][1].chainring}x{dup[0][1].cog}")
    if args.cadence:
        g = Gear(rings[-1], cogs[0])
        print(f"\ntop gear at {args.cadence} rpm: {g.speed_kmh(args.cadence, wheel):.1f} km/h")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sprocket", description="Keep your own ride logs.")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("--db", type=Path, default=DEFAULT_DB, help="database file (%(default)s)")
    sub = p.add_subparsers(dest="command", required=True)

    imp = sub.add_parser("import", help="import GPX files")
    imp.add_argument("files", nargs="+")
    imp.add_argument("--tag", action="append", default=[], help="tag to attach (repeatable)")
    imp.set_defaults(func=cmd_import)

    st = sub.add_parser("stats", help="print totals")
    st.add_argument("--year", type=int)
    st.add_argument("--tag")
    st.add_argument("--imperial", action="store_true")
    st.set_defaults(func=cmd_stats)

    ge = sub.add_parser("gears", help="print a gear development table")
    ge.add_argument("--rings", default="34,50")
    ge.add_argument("--cogs", default="11,12,13,14,15,17,19,21,24,28")
    ge.add_argument("--wheel", default="28-622", help="tyre size or circumference in mm")
    ge.add_argument("--cadence", type=float)
    ge.set_defaults(func=cmd_gears)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
