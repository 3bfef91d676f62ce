"""Shared set-up for the training benchmarks: the scikit-learn digits as PNG files, split."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from workers.ml.data import Sample  # noqa: E402


def digits_samples(folder: Path, size: int = 32) -> list[Sample]:
    """All 1,797 digits, upscaled (nearest) to size x size like tests.factories.make_digits."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    folder.mkdir(parents=True, exist_ok=True)
    samples = []
    for index, (pixels, target) in enumerate(zip(digits.images, digits.target, strict=True)):
        path = folder / f"{index:04d}.png"
        if not path.exists():
            grey = (pixels * (255 / 16)).astype(np.uint8)
            Image.fromarray(grey).resize((size, size), Image.NEAREST).save(path)
        samples.append(Sample(index, path, int(target)))
    return samples


def stratified_split(
    samples: list[Sample], seed: int = 0
) -> tuple[list[Sample], list[Sample], list[Sample]]:
    """Stratified 80/10/10 (our own, until the splits service's stratified split is merged)."""
    from sklearn.model_selection import train_test_split

    targets = [s.target for s in samples]
    train, rest = train_test_split(samples, test_size=0.2, stratify=targets, random_state=seed)
    val, test = train_test_split(
        rest, test_size=0.5, stratify=[s.target for s in rest], random_state=seed
    )
    return list(train), list(val), list(test)
