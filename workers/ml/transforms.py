"""The eval transform (the exact one `preprocess` documents) and training augmentations.

Eval: convert("RGB"), PIL bilinear resize to s x s, scale to 0-1, normalize per channel (RGB).
A plain numpy script reproduces it from the "preprocess" block in the checkpoint provenance.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def preprocess_spec(image_size: int, mean: list[float], std: list[float]) -> dict[str, Any]:
    return {
        "resize": [image_size, image_size],
        "interpolation": "bilinear",
        "mean": list(mean),
        "std": list(std),
        "channel_order": "RGB",
        "scale": "0-1",
        "layout": "NCHW",
    }


def to_normalized_tensor(image: Image.Image, mean: list[float], std: list[float]) -> torch.Tensor:
    array = np.asarray(image, dtype=np.float32) / 255.0
    array = (array - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


class EvalTransform:
    def __init__(self, image_size: int, mean: list[float], std: list[float]) -> None:
        self.image_size = image_size
        self.mean = mean
        self.std = std

    def __call__(self, image: Image.Image) -> torch.Tensor:
        image = image.convert("RGB")
        if image.size != (self.image_size, self.image_size):
            image = image.resize((self.image_size, self.image_size), Image.BILINEAR)
        return to_normalized_tensor(image, self.mean, self.std)


def augmentation(image_size: int, augment: dict[str, Any]) -> Any:
    """The recipe's augmentations as one torchvision v2 transform (None when it asks for
    none). v2 moves masks and boxes passed along with the image; colour changes the image only."""
    from torchvision.transforms import v2

    ops: list[Any] = []
    if augment.get("random_resized_crop"):
        ops.append(v2.RandomResizedCrop(image_size, scale=(0.7, 1.0), antialias=True))
    if augment.get("hflip"):
        ops.append(v2.RandomHorizontalFlip())
    if augment.get("vflip"):
        ops.append(v2.RandomVerticalFlip())
    if augment.get("rotation"):
        ops.append(v2.RandomRotation(float(augment["rotation"])))
    strength = float(augment.get("color_jitter") or 0.0)
    if strength > 0:
        ops.append(v2.ColorJitter(strength, strength, strength))
    return v2.Compose(ops) if ops else None


class TrainTransform:
    """Resize (or random resized crop), flips, rotation, colour jitter, then the eval tail."""

    def __init__(
        self, image_size: int, mean: list[float], std: list[float], augment: dict[str, Any]
    ) -> None:
        self.ops = augmentation(image_size, augment)
        self.image_size = image_size
        self.mean = mean
        self.std = std

    def __call__(self, image: Image.Image) -> torch.Tensor:
        image = image.convert("RGB")
        if image.size != (self.image_size, self.image_size):
            image = image.resize((self.image_size, self.image_size), Image.BILINEAR)
        if self.ops is not None:
            image = self.ops(image)
        return to_normalized_tensor(image, self.mean, self.std)
