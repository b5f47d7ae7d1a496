"""Draw static/favicon.ico, the same picture as static/favicon.svg: a white arrow on a blue square.

No image library needed: a 32x32 RGBA PNG written with zlib, wrapped in an ICO container (every
browser reads PNG icons). Run from the repository root: ``python tools/favicon.py``.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

SIZE = 32
BLUE = (0x0B, 0x5C, 0xAD, 255)
WHITE = (255, 255, 255, 255)
CLEAR = (0, 0, 0, 0)


def inside_square(x: float, y: float, radius: float = 6) -> bool:
    """The 32x32 square with rounded corners (as the SVG's rx=6)."""
    cx = min(max(x, radius), SIZE - radius)
    cy = min(max(y, radius), SIZE - radius)
    return (x - cx) ** 2 + (y - cy) ** 2 <= radius ** 2


def inside_arrow(x: float, y: float) -> bool:
    """The SVG's arrow: a shaft from x 7 to 16 (y 13 to 19) and a head from x 16 (y 7 to 25) to 26."""
    shaft = 7 <= x <= 16 and 13 <= y <= 19
    head = 16 <= x <= 26 and abs(y - 16) <= (26 - x) * 0.9
    return shaft or head


def pixel(px: int, py: int) -> tuple[int, int, int, int]:
    x, y = px + 0.5, py + 0.5
    if not inside_square(x, y):
        return CLEAR
    return WHITE if inside_arrow(x, y) else BLUE


def png() -> bytes:
    rows = b"".join(b"\x00" + b"".join(bytes(pixel(x, y)) for x in range(SIZE)) for y in range(SIZE))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", SIZE, SIZE, 8, 6, 0, 0, 0)  # 8 bits, RGBA
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")


def ico() -> bytes:
    image = png()
    directory = struct.pack("<HHH", 0, 1, 1)  # reserved, type 1 (icon), one image
    entry = struct.pack("<BBBBHHII", SIZE, SIZE, 0, 0, 1, 32, len(image), 6 + 16)
    return directory + entry + image


if __name__ == "__main__":
    Path("static/favicon.ico").write_bytes(ico())
