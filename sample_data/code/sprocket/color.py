"""Colours for the dashboard's heat strip: blend in linear light, not in sRGB."""

from __future__ import annotations

from sprocket._tables import SRGB_TO_LINEAR16


def hex_to_rgb(code: str) -> tuple[int, int, int]:
    code = code.lstrip("#")
    if len(code) == 3:
        code = "".join(ch * 2 for ch in code)
    if len(code) != 6:
        raise ValueError(f"bad colour {code!r}")
    return int(code[0:2], 16), int(code[2:4], 16), int(code[4:6], 16)


def rgb_to_hex(rgb: tuple[int, int, int]) -> str:
    return "#" + "".join(f"{max(0, min(255, c)):02x}" for c in rgb)


def _to_srgb8(linear16: float) -> int:
    v = linear16 / 65535
    s = v * 12.92 if v <= 0.0031308 else 1.055 * v ** (1 / 2.4) - 0.055
    return round(s * 255)


def mix(a: str, b: str, t: float) -> str:
    """Blend colour ``a`` towards ``b`` by ``t`` in [0, 1]; mixing in linear light avoids the
    muddy dark band that naive sRGB interpolation produces between complementary colours."""
    ra, rb = hex_to_rgb(a), hex_to_rgb(b)
    out = []
    for ca, cb in zip(ra, rb, strict=True):
        la, lb = SRGB_TO_LINEAR16[ca], SRGB_TO_LINEAR16[cb]
        out.append(_to_srgb8(la + (lb - la) * t))
    return rgb_to_hex((out[0], out[1], out[2]))


def ramp(colours: list[str], steps: int) -> list[str]:
    """``steps`` colours evenly spread along a multi-stop gradient."""
    if steps < 2 or len(colours) < 2:
        return colours[:1] * max(steps, 0)
    out = []
    for i in range(steps):
        pos = i / (steps - 1) * (len(colours) - 1)
        j = min(int(pos), len(colours) - 2)
        out.append(mix(colours[j], colours[j + 1], pos - j))
    return out
