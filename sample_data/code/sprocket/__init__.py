"""Sprocket: keep your own ride logs.

The package is split into small modules with no third-party dependencies:

- :mod:`sprocket.gpx`      parse GPX 1.1 files into :class:`~sprocket.gpx.Track` objects
- :mod:`sprocket.geo`      distances and bearings on the sphere
- :mod:`sprocket.stats`    distance, climbing, moving time and speed summaries
- :mod:`sprocket.units`    unit conversion and human-friendly formatting
- :mod:`sprocket.gears`    gear development and cadence/speed calculations
- :mod:`sprocket.checksum` CRC-32, used to detect re-imports of the same file
- :mod:`sprocket.storage`  a thin SQLite layer
- :mod:`sprocket.cli`      the ``sprocket`` command
"""

from sprocket.gpx import Track, TrackPoint, parse_gpx
from sprocket.stats import RideStats, summarise

__all__ = ["Track", "TrackPoint", "parse_gpx", "RideStats", "summarise", "__version__"]
__version__ = "0.4.2"
