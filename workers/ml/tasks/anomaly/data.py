"""Anomaly samples as tensors: the image, its label (1 = anomalous), its defect mask at the
input size (zeros for normal images) and whether that mask is known (an anomalous image
without a mask file has none). Geometric augmentations move image and mask together."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from workers.ml.data import load_image
from workers.ml.tasks.anomaly.labels import label_of, mask_file
from workers.ml.tasks.base import Sample
from workers.ml.transforms import augmentation, to_normalized_tensor


def load_mask(sample: Sample, size: int) -> tuple[np.ndarray, bool]:
    """The defect mask at size x size (uint8 0/1) and whether it is known."""
    path = mask_file(sample)
    if path is None:
        return np.zeros((size, size), np.uint8), label_of(sample) == 0
    with Image.open(path) as picture:
        picture.load()
        grey = picture.convert("L").resize((size, size), Image.NEAREST)
    return (np.asarray(grey) > 0).astype(np.uint8), True


class AnomalyDataset(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """(image, label, mask [1, S, S], mask known, index); decoded images are cached."""

    def __init__(
        self,
        samples: Sequence[Sample],
        size: int,
        mean: list[float],
        std: list[float],
        augment: dict[str, Any] | None = None,
    ) -> None:
        self.samples = list(samples)
        self.size = size
        self.mean, self.std = mean, std
        self.ops = augmentation(size, augment) if augment else None
        self._cache: dict[int, tuple[Image.Image, np.ndarray, bool]] = {}

    def __len__(self) -> int:
        return len(self.samples)

    def _load(self, index: int) -> tuple[Image.Image, np.ndarray, bool]:
        if index not in self._cache:
            sample = self.samples[index]
            image = load_image(sample.path).resize((self.size, self.size), Image.BILINEAR)
            mask, known = load_mask(sample, self.size)
            self._cache[index] = (image, mask, known)
        return self._cache[index]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        image, mask, known = self._load(index)
        mask_tensor = torch.from_numpy(mask)[None].float()
        if self.ops is not None:
            from torchvision import tv_tensors

            image, wrapped = self.ops(image, tv_tensors.Mask(mask_tensor))
            mask_tensor = wrapped.as_subclass(torch.Tensor).float()
        label = float(label_of(self.samples[index]) or 0)
        return (
            to_normalized_tensor(image, self.mean, self.std),
            torch.tensor(label),
            mask_tensor,
            torch.tensor(float(known)),
            torch.tensor(index),
        )
