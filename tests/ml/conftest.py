"""Tiny on-disk samples for fits of a few steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from workers.ml.data import Sample


def write_samples(
    folder: Path, count: int, classes: int, multi_label: bool = False
) -> list[Sample]:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    samples = []
    for index in range(count):
        label = index % classes
        pixels = rng.integers(0, 60, (32, 32, 3), dtype=np.uint8)
        pixels[:, :, label % 3] += np.uint8(120 + 40 * (label // 3))  # learnable colour cue
        path = folder / f"{index}.png"
        Image.fromarray(pixels).save(path)
        target: list[int] | int = sorted({label, (label + 1) % classes}) if multi_label else label
        samples.append(Sample(index, path, target=target))
    return samples


@pytest.fixture
def tiny_samples(tmp_path: Path) -> list[Sample]:
    return write_samples(tmp_path / "images", 12, 3)
