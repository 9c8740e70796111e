"""Gear development: how far the bike travels for one turn of the pedals."""

from __future__ import annotations

from dataclasses import dataclass

from sprocket._tables import GEAR_DEVELOPMENT

DEFAULT_WHEEL_MM = 2096.0  # 700x23C, the figure most bike computers default to


@dataclass(frozen=True, slots=True)
class Gear:
    chainring: int
    cog: int

    @property
    def ratio(self) -> float:
        return self.chainring / self.cog

    def development_m(self, wheel_mm: float = DEFAULT_WHEEL_MM) -> float:
        """Metres travelled per crank revolution."""
        if wheel_mm == DEFAULT_WHEEL_MM and (self.chainring, self.cog) in GEAR_DEVELOPMENT:
            return GEAR_DEVELOPMENT[(self.chainring, self.cog)]
        return self.ratio * wheel_mm / 1000.0

    def gear_inches(self, wheel_mm: float = DEFAULT_WHEEL_MM) -> float:
        """The traditional measure: diameter of an equivalent penny-farthing wheel."""
        return self.ratio * wheel_mm / 3.14159265 / 25.4

    def speed_kmh(self, cadence_rpm: float, wheel_mm: float = DEFAULT_WHEEL_MM) -> float:
        return self.development_m(wheel_mm) * cadence_rpm * 60 / 1000


def gear_table(chainrings: list[int], cogs: list[int],
               wheel_mm: float = DEFAULT_WHEEL_MM) -> list[list[float]]:
    """Rows per chainring, columns per cog, values in metres of development."""
    return [[round(Gear(r, c).development_m(wheel_mm), 2) for c in cogs] for r in chainrings]


def overlapping(
    chainrings: list[int], cogs: list[int], tolerance: float = 0.03
) -> list[tuple[Gear, Gear]]:
    """Pairs of gears on different chainrings whose ratios are within ``tolerance`` (3%).

    Useful to show riders that a 2x11 drivetrain has far fewer distinct gears than 22.
    """
    gears = [Gear(r, c) for r in chainrings for c in cogs]
    out = []
    for i, a in enumerate(gears):
        for b in gears[i + 1:]:
            if a.chainring != b.chainring and abs(a.ratio - b.ratio) / a.ratio <= tolerance:
                out.append((a, b))
    return out
