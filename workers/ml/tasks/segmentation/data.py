"""Segmentation data: index-mask targets from mask annotations, joint image+mask transforms
(torchvision v2 with tv_tensors.Mask: nearest interpolation, ignore fill), and the datasets.

A semantic mask is stored once per image (an 8-bit PNG whose values are the project's class
indices, 255 = ignore) with one annotation row per class present; the target maps stored
values to the model's class positions through those rows, so a value without a row becomes
ignore. Polygon annotations, if any, are painted over the mask in order. The dataset and
evaluation code here is what the segmentation gate and dual-head model reuse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from workers.ml.data import load_image
from workers.ml.tasks.base import Sample
from workers.ml.tasks.segmentation.decode import IGNORE


@dataclass
class MaskTarget:
    """How to build one image's index mask in model class positions."""

    file: str | None = None  # the stored index PNG
    lut: dict[int, int] = field(default_factory=dict)  # stored value → class position
    polygons: list[tuple[int, list[list[list[float]]]]] = field(default_factory=list)
    fill: int = IGNORE  # value of pixels no mask or polygon covers (without a mask file)
    pixels: dict[int, int] = field(default_factory=dict)  # class position → pixels (import)


def mask_target(sample: Sample, classes: list[str], background: int | None) -> MaskTarget | None:
    """The sample's target, or None when it has no mask or polygon of a known class."""
    position = {name: i for i, name in enumerate(classes)}
    target = MaskTarget(fill=IGNORE if background is None else background)
    for ann in sample.annotations:
        if ann.class_name not in position:
            continue
        index = position[ann.class_name]  # type: ignore[index]
        g = ann.geometry
        if ann.kind == "mask" and g.get("file") and "index" in g:
            if target.file not in (None, g["file"]):
                continue  # one semantic mask per image; a second file is not expected
            target.file = str(g["file"])
            target.lut[int(g["index"])] = index
            pixels = (ann.attributes or {}).get("pixels")
            if isinstance(pixels, int):
                target.pixels[index] = target.pixels.get(index, 0) + pixels
        elif ann.kind == "polygon":
            rings = g.get("rings") or [g.get("points") or []]
            target.polygons.append((index, rings))
    if target.file is None and not target.polygons:
        return None
    return target


def load_mask(target: MaskTarget, width: int, height: int) -> np.ndarray:
    """The target as a uint8 [H, W] array of class positions (255 = ignore)."""
    if target.file is not None:
        with Image.open(Path(target.file)) as picture:
            stored = np.asarray(picture)
        if stored.ndim == 3:
            stored = stored[..., 0]
        lut = np.full(max(256, int(stored.max(initial=0)) + 1), IGNORE, dtype=np.uint8)
        for value, index in target.lut.items():
            if 0 <= value < len(lut):
                lut[value] = index
        mask = lut[stored.astype(np.int64)]
        if mask.shape != (height, width):
            mask = np.asarray(
                Image.fromarray(mask).resize((width, height), Image.Resampling.NEAREST)
            )
    else:
        mask = np.full((height, width), target.fill, dtype=np.uint8)
    if target.polygons:
        canvas = Image.fromarray(np.ascontiguousarray(mask))
        draw = ImageDraw.Draw(canvas)
        for index, rings in target.polygons:
            for ring in rings:
                if len(ring) >= 3:
                    draw.polygon([(float(x), float(y)) for x, y, *_ in ring], fill=index)
        mask = np.asarray(canvas)
    return np.ascontiguousarray(mask, dtype=np.uint8)


def class_weights(samples: list[Sample], classes: int, kind: str) -> list[float] | None:
    """Cross-entropy weights from the training masks' pixel counts (recorded at import):
    inverse frequency or its square root, scaled to mean 1 over the classes seen and clipped
    to 0.1-10 so a nearly absent class cannot dominate. None for "none" or without counts."""
    if kind == "none":
        return None
    counts = np.zeros(classes, dtype=np.float64)
    for sample in samples:
        target = sample.target
        if isinstance(target, MaskTarget):
            for index, n in target.pixels.items():
                counts[index] += n
    seen = counts > 0
    if not seen.any():
        return None
    frequency = counts / counts.sum()
    weights = np.ones(classes, dtype=np.float64)
    inverse = 1.0 / frequency[seen]
    weights[seen] = np.sqrt(inverse) if kind == "sqrt_inverse_frequency" else inverse
    weights[seen] /= weights[seen].mean()
    return [float(w) for w in np.clip(weights, 0.1, 10.0)]


def train_ops(size: int, augment: dict[str, Any]) -> Any:
    """Joint augmentations: geometric ones move the mask (nearest) and fill it with ignore."""
    from torchvision import tv_tensors
    from torchvision.transforms import v2

    fill = {tv_tensors.Image: 0, tv_tensors.Mask: IGNORE}
    ops: list[Any] = []
    if augment.get("random_resized_crop"):
        ops.append(v2.RandomResizedCrop((size, size), scale=(0.5, 1.0), antialias=True))
    else:
        ops.append(v2.Resize((size, size), antialias=True))
    if augment.get("hflip"):
        ops.append(v2.RandomHorizontalFlip())
    if augment.get("vflip"):
        ops.append(v2.RandomVerticalFlip())
    if augment.get("rotation"):
        ops.append(v2.RandomRotation(float(augment["rotation"]), fill=fill))  # type: ignore[arg-type]
    strength = float(augment.get("color_jitter") or 0.0)
    if strength > 0:
        ops.append(v2.ColorJitter(strength, strength, strength, min(0.1, strength / 2)))
    return v2.Compose(ops)


class SegmentationDataset(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """(normalised SxS image, long SxS mask of class positions with 255 = ignore, index).

    Without `augment` the image goes through exactly the shared eval transform (PIL bilinear
    resize) and the mask through a nearest resize. Decoded pairs are cached, shrunk to at most
    twice the training side so random crops stay sharp and memory stays bounded."""

    def __init__(
        self,
        samples: list[Sample],
        size: int,
        mean: list[float],
        std: list[float],
        augment: dict[str, Any] | None = None,
        cache: bool = True,
    ) -> None:
        self.samples = samples
        self.size = size
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)
        self.ops = train_ops(size, augment) if augment is not None else None
        self.cache: dict[int, tuple[Image.Image, np.ndarray]] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.samples)

    def pair(self, index: int) -> tuple[Image.Image, np.ndarray]:
        if self.cache is not None and index in self.cache:
            return self.cache[index]
        sample = self.samples[index]
        picture = load_image(sample.path)
        mask = load_mask(sample.target, *picture.size)
        if self.ops is not None:
            side = max(picture.size)
            if side > 2 * self.size:  # keep crops sharp, bound the memory of the cache
                scale = 2 * self.size / side
                new = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
                picture = picture.resize(new, Image.Resampling.BILINEAR)
                mask = np.asarray(Image.fromarray(mask).resize(new, Image.Resampling.NEAREST))
        else:
            picture = picture.resize((self.size, self.size), Image.Resampling.BILINEAR)
            mask = np.asarray(
                Image.fromarray(mask).resize((self.size, self.size), Image.Resampling.NEAREST)
            )
        if self.cache is not None:
            self.cache[index] = (picture, mask)
        return picture, mask

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        from torchvision import tv_tensors
        from torchvision.transforms.v2 import functional as F  # noqa: N812

        picture, mask = self.pair(index)
        image = F.pil_to_tensor(picture)
        target = torch.from_numpy(np.array(mask, dtype=np.int64))
        if self.ops is not None:
            out = self.ops(tv_tensors.Image(image), tv_tensors.Mask(target))
            image, target = out[0].as_subclass(torch.Tensor), out[1].as_subclass(torch.Tensor)
        x = (image.float() / 255.0 - self.mean) / self.std
        return x, target.long(), index
