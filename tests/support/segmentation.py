"""A small mask dataset for segmentation tests: synthetic scenes in the masks importer's
layout, two non-square images, and the three bad masks the import must report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.synthetic import write_dataset

CLASSES = ["background", "circle", "square", "triangle"]


def write_source(root: Path) -> dict[str, str]:
    """16 synthetic scenes, two non-square ones, and the three bad masks; returns the files
    that should be warned about, by problem."""
    write_dataset("segmentation", root, images=16, size=32, seed=3)
    rng = np.random.default_rng(0)
    for name in ("wide_a", "wide_b"):  # 48 x 32: predictions must come back at this size
        pixels = rng.integers(0, 80, (32, 48, 3), dtype=np.uint8)
        mask = np.zeros((32, 48), np.uint8)
        pixels[8:24, 10:30] = (230, 40, 40)
        mask[8:24, 10:30] = 2
        Image.fromarray(pixels).save(root / "images" / f"{name}.png")
        Image.fromarray(mask).save(root / "masks" / f"{name}.png")
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(root / "masks" / "00001.png")  # wrong size
    unknown = np.asarray(Image.open(root / "masks" / "00002.png")).copy()
    unknown[:4, :4] = 7  # not in class_names.txt
    Image.fromarray(unknown).save(root / "masks" / "00002.png")
    Image.fromarray(np.full((32, 32), 255, np.uint8)).save(root / "masks" / "00003.png")
    return {
        "size": "images/00001.png",
        "unknown": "images/00002.png",
        "all_ignore": "images/00003.png",
    }
