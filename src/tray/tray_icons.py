#!/usr/bin/env python3
"""Draws the Windows tray's state icons as .ico files (16, 20, 24, 32 and 48 pixels, 32-bit
BGRA), so that no binary image lives in the repository. The build runs it before windres
compiles tray_win.rc.

usage: tray_icons.py OUTDIR

Each state differs in shape as well as colour: connected, a green disc; hub unreachable, an
orange ring; control API error, an amber disc with an exclamation mark; devstreamsd not
running, a grey ring crossed by a slash."""

import math
import os
import struct
import sys

SIZES = (16, 20, 24, 32, 48)
SUPER = 4  # samples per pixel and axis, for smooth edges

# name: (colour (r, g, b), shape)
ICONS = {
    "connected": ((0x2E, 0x9D, 0x4A), "disc"),
    "hub_down": ((0xE0, 0x7A, 0x00), "ring"),
    "api_error": ((0xD4, 0x9A, 0x00), "alert"),
    "daemon_down": ((0x80, 0x80, 0x80), "slashed"),
}


def inside(shape, x, y):
    """Whether the point (x, y) of the unit square (0..1, y downwards) is painted, and whether
    it is painted white (a mark on the disc)."""
    dx, dy = x - 0.5, y - 0.5
    r = math.hypot(dx, dy)
    if shape == "disc":
        return r <= 0.46, False
    if shape == "ring":
        return 0.28 <= r <= 0.46, False
    if shape == "alert":
        if r > 0.46:
            return False, False
        bar = abs(dx) <= 0.07 and 0.18 <= y <= 0.60
        dot = math.hypot(dx, y - 0.76) <= 0.075
        return True, bar or dot
    # slashed: a ring and a diagonal bar from top-left to bottom-right
    ring = 0.30 <= r <= 0.46
    slash = abs(dx - dy) / math.sqrt(2) <= 0.07 and r <= 0.46
    return ring or slash, False


def pixels(size, colour, shape):
    """Rows bottom-up (as a DIB stores them) of BGRA bytes."""
    rows = []
    n = SUPER * SUPER
    for py in range(size - 1, -1, -1):
        row = bytearray()
        for px in range(size):
            painted = white = 0
            for sy in range(SUPER):
                for sx in range(SUPER):
                    x = (px + (sx + 0.5) / SUPER) / size
                    y = (py + (sy + 0.5) / SUPER) / size
                    p, w = inside(shape, x, y)
                    painted += p
                    white += p and w
            if not painted:
                row += b"\0\0\0\0"
                continue
            wf = white / painted
            r, g, b = (round(c * (1 - wf) + 255 * wf) for c in colour)
            row += bytes((b, g, r, round(255 * painted / n)))
        rows.append(bytes(row))
    return rows


def image(size, colour, shape):
    """One icon image: BITMAPINFOHEADER (height doubled for the AND mask), pixels, AND mask."""
    header = struct.pack("<IiiHHIIiiII", 40, size, 2 * size, 1, 32, 0, 0, 0, 0, 0, 0)
    mask_row = ((size + 31) // 32) * 4  # 1 bit per pixel, rows padded to 32 bits
    return header + b"".join(pixels(size, colour, shape)) + b"\0" * (mask_row * size)


def ico(colour, shape):
    images = [image(s, colour, shape) for s in SIZES]
    out = struct.pack("<HHH", 0, 1, len(images))
    offset = 6 + 16 * len(images)
    for s, data in zip(SIZES, images):
        out += struct.pack("<BBBBHHII", s % 256, s % 256, 0, 0, 1, 32, len(data), offset)
        offset += len(data)
    return out + b"".join(images)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: tray_icons.py OUTDIR")
    os.makedirs(sys.argv[1], exist_ok=True)
    for name, (colour, shape) in ICONS.items():
        with open(os.path.join(sys.argv[1], f"tray_{name}.ico"), "wb") as f:
            f.write(ico(colour, shape))


if __name__ == "__main__":
    main()
