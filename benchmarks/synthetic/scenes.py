"""Drawing helpers the generators share: textured backgrounds and shapes in random colours.

The class of an object is its shape (circle, square, triangle, cross); its colour, size and
position are random and the background has texture and clutter, so neither colour nor a
plain background gives the class away.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SHAPES = ("circle", "square", "triangle", "cross")


def background(rng: np.random.Generator, size: int) -> Image.Image:
    """Low-frequency colour noise plus stripes or a checkerboard, lightly blurred."""
    coarse = rng.integers(40, 215, (4, 4, 3), dtype=np.uint8)
    base = Image.fromarray(coarse).resize((size, size), Image.BICUBIC)
    draw = ImageDraw.Draw(base)
    tint = tuple(int(v) for v in rng.integers(0, 256, 3))
    step = int(rng.integers(6, 16))
    if rng.random() < 0.5:
        for offset in range(-size, size, step):
            draw.line([(offset, 0), (offset + size, size)], fill=tint, width=1)
    else:
        for y in range(0, size, step):
            for x in range((y // step % 2) * step, size, 2 * step):
                draw.rectangle([x, y, x + step // 2, y + step // 2], outline=tint)
    noise = rng.normal(0, 10, (size, size, 3))
    pixels = np.clip(np.asarray(base, np.float64) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels).filter(ImageFilter.GaussianBlur(0.6))


def colour(rng: np.random.Generator) -> tuple[int, int, int]:
    """A saturated random colour (any class gets any colour)."""
    hue = rng.random()
    r, g, b = (abs(((hue * 6 + k) % 6) - 3) - 1 for k in (0, 4, 2))
    level = 0.55 + 0.45 * rng.random()
    return tuple(int(255 * level * min(1, max(0, c))) for c in (r, g, b))  # type: ignore[return-value]


def polygon(
    shape: str, cx: float, cy: float, r: float, angle: float = 0.0
) -> list[tuple[float, float]]:
    """Outline points of a shape centred at (cx, cy) with circumradius r."""
    if shape == "circle":
        count = 28
        return [
            (cx + r * math.cos(2 * math.pi * k / count), cy + r * math.sin(2 * math.pi * k / count))
            for k in range(count)
        ]
    if shape == "square":
        corners = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
        scale = r / math.sqrt(2)
    elif shape == "triangle":
        corners = [(math.cos(a), math.sin(a)) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
        scale = r
    else:  # cross: a plus sign
        w = 0.36
        corners = [
            (-w, -1),
            (w, -1),
            (w, -w),
            (1, -w),
            (1, w),
            (w, w),
            (w, 1),
            (-w, 1),
            (-w, w),
            (-1, w),
            (-1, -w),
            (-w, -w),
        ]
        scale = r
    cos, sin = math.cos(angle), math.sin(angle)
    return [
        (cx + scale * (x * cos - y * sin), cy + scale * (x * sin + y * cos)) for x, y in corners
    ]


def draw_shape(
    image: Image.Image, shape: str, cx: float, cy: float, r: float, rng: np.random.Generator
) -> list[tuple[float, float]]:
    """Draw a filled shape with a slightly darker outline; returns its outline."""
    points = polygon(shape, cx, cy, r, angle=float(rng.uniform(-0.25, 0.25)))
    fill = colour(rng)
    edge = tuple(int(c * 0.6) for c in fill)
    ImageDraw.Draw(image).polygon(points, fill=fill, outline=edge)
    return points


def bbox_of(points: list[tuple[float, float]], size: int) -> tuple[float, float, float, float]:
    xs = [min(max(p[0], 0.0), size) for p in points]
    ys = [min(max(p[1], 0.0), size) for p in points]
    return min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)
