"""Detection scenes: 0-4 shapes per image (circle, square, triangle as classes; a cross as an
unlabelled distractor), 15-40 % of the image side, random colours, in COCO JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from benchmarks.synthetic import generator
from benchmarks.synthetic.scenes import SHAPES, background, bbox_of, draw_shape

CLASSES = list(SHAPES[:3])


def place(
    rng: np.random.Generator, size: int, taken: list[tuple[float, float, float]]
) -> tuple[float, float, float] | None:
    """A centre and radius that does not overlap the shapes already placed (a few tries)."""
    for _ in range(30):
        r = size * rng.uniform(0.08, 0.2)
        cx, cy = rng.uniform(r, size - r, 2)
        if all((cx - x) ** 2 + (cy - y) ** 2 > (r + q + 2) ** 2 for x, y, q in taken):
            return float(cx), float(cy), float(r)
    return None


COUNTS = ([0, 1, 2, 2, 3, 3, 4], [0.06, 0.18, 0.19, 0.19, 0.17, 0.11, 0.10])


def scene(
    rng: np.random.Generator, size: int, counts: tuple[list[int], list[float]]
) -> tuple[Image.Image, list[tuple[str, list[tuple[float, float]]]]]:
    """A textured background with a random number of non-overlapping class shapes (their
    outlines returned) and, in 30 % of images, an unlabelled cross the model must ignore."""
    picture = background(rng, size)
    taken: list[tuple[float, float, float]] = []
    objects = []
    for _ in range(int(rng.choice(counts[0], p=counts[1]))):
        spot = place(rng, size, taken)
        if spot is None:
            break
        taken.append(spot)
        shape = CLASSES[int(rng.integers(len(CLASSES)))]
        objects.append((shape, draw_shape(picture, shape, *spot, rng)))
    if rng.random() < 0.3:
        spot = place(rng, size, taken)
        if spot is not None:
            draw_shape(picture, SHAPES[3], *spot, rng)
    return picture, objects


@generator(
    "detection",
    tiny={
        "model": "fcos_small",
        "epochs": 2,
        "image_size": 64,
        "batch_size": 8,
        "warmup_epochs": 0,
    },
)
def write(root: Path, *, images: int, size: int, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    folder = root / "images"
    folder.mkdir(parents=True, exist_ok=True)
    coco: dict[str, Any] = {
        "images": [],
        "annotations": [],
        "categories": [{"id": i + 1, "name": name} for i, name in enumerate(CLASSES)],
    }
    for index in range(images):
        picture, objects = scene(rng, size, COUNTS)
        for shape, points in objects:
            x, y, w, h = bbox_of(points, size)
            coco["annotations"].append(
                {
                    "id": len(coco["annotations"]) + 1,
                    "image_id": index + 1,
                    "category_id": CLASSES.index(shape) + 1,
                    "bbox": [round(x, 2), round(y, 2), round(w, 2), round(h, 2)],
                    "area": round(w * h, 2),
                    "iscrowd": 0,
                }
            )
        name = f"{index:05d}.png"
        picture.save(folder / name)
        coco["images"].append({"id": index + 1, "file_name": name, "width": size, "height": size})
    (root / "annotations.json").write_text(json.dumps(coco))
    return {"format": "coco", "classes": CLASSES}
