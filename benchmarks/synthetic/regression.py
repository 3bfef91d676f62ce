"""Regression scenes: one bar on a textured background, with two targets a ruler could
measure: its `length` (pixels at the generated size) and its `angle` (degrees, -60 to 60, 0 =
horizontal). Colour, thickness and position are random, so neither tells the targets.
Written as `images/*.png` plus `targets.csv` (image, length, angle), a CSV import.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np
from PIL import ImageDraw

from benchmarks.synthetic import generator
from benchmarks.synthetic.scenes import background, colour


def draw_bar(picture: Any, rng: np.random.Generator, size: int) -> tuple[float, float]:
    """A bar of random length and angle, fully inside the picture; returns (length, angle)."""
    length = size * rng.uniform(0.2, 0.8)
    angle = rng.uniform(-60, 60)
    dx, dy = math.cos(math.radians(angle)) * length / 2, -math.sin(math.radians(angle)) * length / 2
    margin = size * 0.06
    cx = rng.uniform(margin + abs(dx), size - margin - abs(dx))
    cy = rng.uniform(margin + abs(dy), size - margin - abs(dy))
    width = max(2, round(size * rng.uniform(0.03, 0.06)))
    fill = colour(rng)
    ImageDraw.Draw(picture).line([(cx - dx, cy - dy), (cx + dx, cy + dy)], fill=fill, width=width)
    return length, angle


@generator(
    "regression",
    tiny={"model": "small_cnn", "epochs": 2, "image_size": 32, "batch_size": 8},
)
def write(root: Path, *, images: int, size: int, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    folder = root / "images"
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for index in range(images):
        picture = background(rng, size)
        length, angle = draw_bar(picture, rng, size)
        name = f"{index:05d}.png"
        picture.save(folder / name)
        rows.append((f"images/{name}", round(length, 3), round(angle, 3)))
    with open(root / "targets.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "length", "angle"])
        writer.writerows(rows)
    return {"format": "csv", "classes": [], "targets": ["length", "angle"]}
