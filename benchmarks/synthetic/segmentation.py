"""Semantic segmentation scenes: one to four shapes on a textured background, with an 8-bit
index mask per image (0 = background, 1-3 = circle, square, triangle; 255 = ignore on each
shape's one-pixel outline, as VOC marks uncertain borders) and `class_names.txt`.

    images/00000.png  masks/00000.png  class_names.txt      (the "masks" importer's layout)
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
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    (root / "class_names.txt").write_text("\n".join(CLASSES) + "\n")
    for index in range(images):
        picture = background(rng, size)
        mask = Image.new("L", (size, size), 0)
        draw = ImageDraw.Draw(mask)
        for _ in range(int(rng.integers(1, 5))):
            label = int(rng.integers(1, len(CLASSES)))
            r = size * rng.uniform(0.1, 0.24)
            cx, cy = rng.uniform(r * 0.6, size - r * 0.6, 2)
            outline = draw_shape(picture, CLASSES[label], cx, cy, r, rng)
            draw.polygon(outline, fill=label, outline=IGNORE)
        picture.save(root / "images" / f"{index:05d}.png")
        mask.save(root / "masks" / f"{index:05d}.png")
    return {"format": "masks", "classes": CLASSES}
