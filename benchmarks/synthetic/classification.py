"""Classification scenes: one shape per image (the class), in class folders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.synthetic import generator
from benchmarks.synthetic.scenes import SHAPES, background, draw_shape


@generator(
    "classification",
    tiny={
        "model": "small_cnn",
        "epochs": 1,
        "image_size": 32,
        "batch_size": 16,
        "warmup_epochs": 0,
    },
)
def write(root: Path, *, images: int, size: int, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    classes = list(SHAPES[:3])
    for index in range(images):
        shape = classes[index % len(classes)]
        picture = background(rng, size)
        r = size * rng.uniform(0.2, 0.36)
        cx, cy = rng.uniform(r, size - r, 2)
        draw_shape(picture, shape, cx, cy, r, rng)
        folder = root / shape
        folder.mkdir(parents=True, exist_ok=True)
        picture.save(folder / f"{index:05d}.png")
    return {"format": "folders", "classes": classes}
