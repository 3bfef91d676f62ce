"""Dual-head data: the class target of classification plus the image's channel-bit mask
(app/tasks/channel_masks.py: bit k = channel k, 255 = ignore), loaded and augmented jointly by
segmentation's dataset (nearest resize, ignore fill), and the mask's tier weight."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from workers.ml.tasks.base import Sample
from workers.ml.tasks.segmentation.data import MaskTarget, SegmentationDataset
from workers.ml.tasks.segmentation.decode import IGNORE

IDENTITY = {value: value for value in range(256)}


def channel_info(samples: dict[str, list[Sample]]) -> dict[str, Any]:
    """The channels the masks name (the first mask's list; all come from one source layout)
    and whether they are exclusive; empty channels when no image has a mask."""
    for rows in samples.values():
        for sample in rows:
            for ann in sample.annotations:
                if ann.kind == "mask" and "channels" in ann.geometry:
                    return {
                        "channels": list(ann.geometry["channels"]),
                        "exclusive": bool(ann.geometry.get("exclusive")),
                    }
    return {"channels": [], "exclusive": False}


def mask_of(sample: Sample, tier_weights: dict[str, float]) -> tuple[MaskTarget | None, float]:
    """The sample's mask target and loss weight (tier A/B/C; no tier = A); None without a
    mask or for a weight-0 tier."""
    for ann in sample.annotations:
        if ann.kind == "mask" and "channels" in ann.geometry and ann.geometry.get("file"):
            weight = float(tier_weights.get(str(ann.attributes.get("tier") or "A"), 1.0))
            if weight <= 0:
                return None, 0.0
            return MaskTarget(file=str(ann.geometry["file"]), lut=IDENTITY), weight
    return None, 0.0


def negative(x: torch.Tensor) -> torch.Tensor:
    """A synthetic non-domain image the size of a normalised one: noise, a flat colour, or a
    smooth random colour field. (Shuffling the image's own tiles was tried and dropped: its
    tiles look locally like the object, so an all-background mask on them contradicts the
    real masks and the segmentation head collapsed.)"""
    kind = int(torch.randint(0, 3, (1,)))
    if kind == 0:
        return torch.randn(x.shape)
    if kind == 1:
        return torch.randn(x.shape[0], 1, 1).expand_as(x).clone()
    coarse = torch.randn(1, x.shape[0], 4, 4)
    field = torch.nn.functional.interpolate(coarse, size=x.shape[-2:], mode="bilinear")
    return field[0]


class DualHeadDataset(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """(image, class target, channel-bit mask (long, 255 = ignore everywhere without a mask),
    mask weight, class weight, index). With `negative_share`, that share of images (training)
    becomes a synthetic negative: all-background mask of weight 1, class weight 0."""

    def __init__(
        self,
        samples: list[Sample],
        size: int,
        mean: list[float],
        std: list[float],
        tier_weights: dict[str, float],
        augment: dict[str, Any] | None,
        multi_label: bool,
        num_classes: int,
        negative_share: float = 0.0,
    ) -> None:
        self.samples = samples
        self.weights: list[float] = []
        shadows = []
        for sample in samples:
            target, weight = mask_of(sample, tier_weights)
            self.weights.append(weight)
            shadows.append(dataclasses.replace(sample, target=target or MaskTarget(fill=IGNORE)))
        self.pairs = SegmentationDataset(shadows, size, mean, std, augment)
        self.multi_label = multi_label
        self.num_classes = num_classes
        self.negative_share = negative_share

    def __len__(self) -> int:
        return len(self.samples)

    def label(self, index: int) -> torch.Tensor:
        target = self.samples[index].target
        if self.multi_label:
            y = torch.zeros(self.num_classes)
            y[list(target)] = 1.0
            return y
        return torch.tensor(int(target[0]))

    def __getitem__(
        self, index: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float, float, int]:
        x, mask, _ = self.pairs[index]
        label = self.label(index)
        if self.negative_share and float(torch.rand(1)) < self.negative_share:
            return negative(x), label, torch.zeros_like(mask), 1.0, 0.0, index
        return x, label, mask, self.weights[index], 1.0, index
