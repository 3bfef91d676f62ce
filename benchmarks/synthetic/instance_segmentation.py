"""Instance-segmentation scenes: 0-5 shapes per image (circle, square, triangle as classes; a
cross as an unlabelled distractor) in random colours on textured backgrounds, in COCO JSON.

Detection's scenes with up to five objects: several of one class often share an image, so a
model has to tell instances apart, not only paint classes. Masks come in every COCO form the
importer reads: most as polygons, some as compressed RLE and some as uncompressed RLE (counts
lists), each rasterised from the shape.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from benchmarks.synthetic import generator
from benchmarks.synthetic.detection import CLASSES, scene
from benchmarks.synthetic.scenes import bbox_of

COUNTS = ([0, 1, 2, 3, 4, 5], [0.05, 0.2, 0.25, 0.25, 0.15, 0.1])


def _segmentation(
    points: list[tuple[float, float]], size: int, form: str
) -> list[list[float]] | dict[str, Any]:
    if form == "polygon":
        return [[round(v, 2) for p in points for v in p]]
    from pycocotools import mask as coco_mask

    canvas = Image.new("L", (size, size), 0)
    ImageDraw.Draw(canvas).polygon(points, fill=1)
    mask = np.asfortranarray(np.asarray(canvas, np.uint8))
    rle = coco_mask.encode(mask)
    if form == "rle":
        return {"counts": rle["counts"].decode("ascii"), "size": [size, size]}
    flat = mask.flatten(order="F")
    changes = np.flatnonzero(np.diff(np.concatenate([[0], flat, [0]])))
    runs = np.diff(np.concatenate([[0], changes])).tolist()
    return {"counts": [int(c) for c in runs], "size": [size, size]}


@generator(
    "instance_segmentation",
    tiny={
        "model": "maskrcnn_small",
        "epochs": 2,
        "image_size": 48,
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
            form = str(rng.choice(["polygon", "rle", "rle_list"], p=[0.7, 0.15, 0.15]))
            coco["annotations"].append(
                {
                    "id": len(coco["annotations"]) + 1,
                    "image_id": index + 1,
                    "category_id": CLASSES.index(shape) + 1,
                    "segmentation": _segmentation(points, size, form),
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
