"""Pictures for the browser tests, made here as PNG bytes (zlib and struct only): a sunset
over hills that reads well in a screenshot, in any size and with its own colours."""

from __future__ import annotations

import math
import struct
import zlib

__all__ = ["png", "sunset"]

Colour = tuple[int, int, int]


def png(width: int, height: int, rows: list[bytes]) -> bytes:
    """An 8-bit RGB PNG from `height` rows of `width` * 3 bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    raw = b"".join(b"\x00" + row for row in rows)  # filter type 0 on every row
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )


def _mix(a: Colour, b: Colour, t: float) -> Colour:
    t = min(1.0, max(0.0, t))
    return (
        round(a[0] + (b[0] - a[0]) * t),
        round(a[1] + (b[1] - a[1]) * t),
        round(a[2] + (b[2] - a[2]) * t),
    )


def sunset(
    width: int = 640,
    height: int = 420,
    sky: tuple[Colour, Colour] = ((44, 62, 140), (250, 170, 110)),
    hills: tuple[Colour, Colour] = ((70, 60, 120), (35, 32, 70)),
) -> bytes:
    """A sky fading to the horizon, a low sun, and two ridges of hills in front of it."""
    sun_x, sun_y, sun_r = width * 0.62, height * 0.58, height * 0.13
    rows = []
    for y in range(height):
        sky_colour = _mix(sky[0], sky[1], y / (height * 0.75))
        row = bytearray()
        for x in range(width):
            far = height * (0.66 + 0.06 * math.sin(x / width * 5.1 + 0.8))
            near = height * (0.8 + 0.07 * math.sin(x / width * 3.3 + 2.2))
            if y >= near:
                colour = _mix(hills[1], (20, 18, 40), (y - near) / (height - near + 1))
            elif y >= far:
                colour = hills[0]
            elif math.hypot(x - sun_x, y - sun_y) <= sun_r:
                colour = (255, 224, 150)
            else:
                colour = sky_colour
            row += bytes(colour)
        rows.append(bytes(row))
    return png(width, height, rows)
