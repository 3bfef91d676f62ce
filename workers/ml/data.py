"""Image loading and the image-level dataset (classification-style targets) tasks share."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from workers.ml.tasks.base import Sample


def load_image(path: Path) -> Image.Image:
    with Image.open(path) as image:
        image.load()
        return image.convert("RGB")


class ImageDataset(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """(samples, transform) -> (tensor, target, index).

    Targets: a long scalar for multi-class; a multi-hot float vector when `num_classes` is given
    with multi_label=True. `cache=True` keeps decoded images in memory (small datasets).
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        transform: Callable[[Image.Image], torch.Tensor],
        *,
        multi_label: bool = False,
        num_classes: int | None = None,
        cache: bool = True,
    ) -> None:
        self.samples = list(samples)
        self.transform = transform
        self.multi_label = multi_label
        self.num_classes = num_classes
        self.cache: dict[int, Image.Image] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.samples)

    def _image(self, index: int) -> Image.Image:
        if self.cache is None:
            return load_image(self.samples[index].path)
        image = self.cache.get(index)
        if image is None:
            image = load_image(self.samples[index].path)
            self.cache[index] = image
        return image

    def target_tensor(self, target: Any) -> torch.Tensor:
        if self.multi_label:
            assert self.num_classes is not None
            vector = torch.zeros(self.num_classes)
            for index in [target] if isinstance(target, int) else target:
                vector[int(index)] = 1.0
            return vector
        if isinstance(target, list):
            target = target[0]
        return torch.tensor(int(target), dtype=torch.long)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        sample = self.samples[index]
        return self.transform(self._image(index)), self.target_tensor(sample.target), index
