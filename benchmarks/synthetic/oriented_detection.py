"""Rotated-rectangle scenes: 0-4 elongated objects per image at any angle (a bar, an ellipse
and an arrow as classes; a circle as an unlabelled distractor), long side 16-40 % of the
image side, aspect 1.7-3.2, random colours, in DOTA format (`images/` + `labelTxt/`, four
corners per object). The class is the shape inside the rotated box, so a model must read the
shape and the angle; an object's box is its exact rotated extent."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from PIL import ImageDraw

from benchmarks.synthetic import generator
from benchmarks.synthetic.detection import place
from benchmarks.synthetic.scenes import background, colour

CLASSES = ["arrow", "bar", "ellipse"]


def outline(
    shape: str, cx: float, cy: float, w: float, h: float, angle: float
) -> list[tuple[float, float]]:
    """The shape's outline in its rotated box (long side w along `angle` radians)."""
    if shape == "bar":
        local = [(-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5)]
    elif shape == "ellipse":
        local = [(0.5 * math.cos(t), 0.5 * math.sin(t)) for t in np.linspace(0, 2 * math.pi, 32)]
    else:  # arrow: a shaft and a head pointing along +w
        local = [
            (-0.5, -0.2),
            (0.1, -0.2),
            (0.1, -0.5),
            (0.5, 0.0),
            (0.1, 0.5),
            (0.1, 0.2),
            (-0.5, 0.2),
        ]
    cos, sin = math.cos(angle), math.sin(angle)
    return [(cx + x * w * cos - y * h * sin, cy + x * w * sin + y * h * cos) for x, y in local]


def corners(cx: float, cy: float, w: float, h: float, angle: float) -> list[tuple[float, float]]:
    return outline("bar", cx, cy, w, h, angle)


@generator(
    "oriented_detection",
    tiny={
        "model": "rotated_fcos_small",
        "epochs": 2,
        "image_size": 64,
        "batch_size": 8,
        "warmup_epochs": 0,
    },
)
def write(root: Path, *, images: int, size: int, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    pictures, labels = root / "images", root / "labelTxt"
    pictures.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    for index in range(images):
        picture = background(rng, size)
        draw = ImageDraw.Draw(picture)
        taken: list[tuple[float, float, float]] = []
        lines = []
        count = int(rng.choice([0, 1, 2, 2, 3, 3, 4], p=[0.06, 0.18, 0.19, 0.19, 0.17, 0.11, 0.10]))
        for _ in range(count):
            spot = place(rng, size, taken)
            if spot is None:
                break
            taken.append(spot)
            cx, cy, r = spot
            w = 2 * r
            h = w / rng.uniform(1.7, 3.2)
            angle = rng.uniform(0, math.pi)
            shape = CLASSES[int(rng.integers(len(CLASSES)))]
            draw.polygon(outline(shape, cx, cy, w, h, angle), fill=colour(rng))
            points = " ".join(f"{x:.2f} {y:.2f}" for x, y in corners(cx, cy, w, h, angle))
            lines.append(f"{points} {shape} 0")
        if rng.random() < 0.3:  # a distractor that is no class: the model must not box it
            spot = place(rng, size, taken)
            if spot is not None:
                cx, cy, r = spot
                draw.ellipse([cx - r / 2, cy - r / 2, cx + r / 2, cy + r / 2], fill=colour(rng))
        name = f"{index:05d}"
        picture.save(pictures / f"{name}.png")
        (labels / f"{name}.txt").write_text("".join(f"{line}\n" for line in lines))
    return {"format": "dota", "classes": CLASSES}
