"""Semantic segmentation scenes: one to four shapes on a textured background, with an 8-bit
index mask per image (0 = background, 1-3 = circle, square, triangle; 255 = ignore on each
shape's one-pixel outline, as VOC marks uncertain borders) and `class_names.txt`.

    images/00000.png  masks/00000.png  class_names.txt      (the "masks" importer's layout)

The variant "segmentation/hierarchy" draws all four shapes and adds `taxonomy.csv`: coarse
groups `compact` (circle, square) and `spiky` (triangle, cross) under the root `shape`, so
the binary level is background vs shape (the background is its own group at every level).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from benchmarks.synthetic import generator
from benchmarks.synthetic.scenes import SHAPES, background, draw_shape

CLASSES = ["background", *SHAPES[:3]]
IGNORE = 255
TAXONOMY = {"circle": "compact", "square": "compact", "triangle": "spiky", "cross": "spiky"}


@generator(
    "segmentation",
    tiny={
        "model": "unet_small",
        "epochs": 1,
        "image_size": 32,
        "batch_size": 8,
        "warmup_epochs": 0,
    },
)
def write(root: Path, *, images: int, size: int, seed: int = 0) -> dict[str, Any]:
    return scenes(root, CLASSES, images=images, size=size, seed=seed)


@generator(
    "segmentation",
    variant="hierarchy",
    tiny={
        "model": "unet_small",
        "image_size": 32,
        "batch_size": 8,
        "warmup_epochs": 0,
        "hierarchy": {
            "levels": ["binary", "coarse", "fine"],
            "curriculum": [
                {"level": "coarse", "epochs": 1, "lr": 0.003},
                {"level": "fine", "epochs": 1, "lr": 0.003},
            ],
            "gated_inference": True,
        },
    },
)
def write_hierarchy(root: Path, *, images: int, size: int, seed: int = 0) -> dict[str, Any]:
    info = scenes(root, ["background", *TAXONOMY], images=images, size=size, seed=seed)
    rows = [
        *(f"{fine},{group}" for fine, group in TAXONOMY.items()),
        "compact,shape",
        "spiky,shape",
    ]
    (root / "taxonomy.csv").write_text("class,parent\n" + "\n".join(rows) + "\n")
    return {**info, "taxonomy": dict(TAXONOMY)}


def scenes(root: Path, classes: list[str], *, images: int, size: int, seed: int) -> dict[str, Any]:
    """Scenes of one to four shapes of `classes` (index 0 = background) in the masks layout."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    (root / "class_names.txt").write_text("\n".join(classes) + "\n")
    for index in range(images):
        picture = background(rng, size)
        mask = Image.new("L", (size, size), 0)
        draw = ImageDraw.Draw(mask)
        for _ in range(int(rng.integers(1, 5))):
            label = int(rng.integers(1, len(classes)))
            r = size * rng.uniform(0.1, 0.24)
            cx, cy = rng.uniform(r * 0.6, size - r * 0.6, 2)
            outline = draw_shape(picture, classes[label], cx, cy, r, rng)
            draw.polygon(outline, fill=label, outline=IGNORE)
        picture.save(root / "images" / f"{index:05d}.png")
        mask.save(root / "masks" / f"{index:05d}.png")
    return {"format": "masks", "classes": classes}
