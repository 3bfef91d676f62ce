"""Oriented-detection data: le90 targets from obb annotations, and joint image + rotated-box
transforms.

Targets hold boxes as (cx, cy, w, h, θ) in stored-image pixels, θ in radians, le90 (the
annotation's degrees normalised: long edge first, θ in [-90°, 90°)), and 0-based labels.
Difficult (DOTA) and crowd boxes are kept apart as `ignore_obb` for evaluation; degenerate
boxes (a side under 1 px) are dropped and counted, so training notes say how many.

Transforms act on corners: the image goes to SxS exactly as the shared eval transform does
(PIL bilinear), then training applies one affine map about the image centre (flips, a
quarter turn, a small rotation, a zoom) to the image (one grid_sample) and to every box's
corners; the box is rebuilt from its transformed corners (geometry.obb_from_corners) and
dropped when its centre leaves the image.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from PIL import Image

from workers.ml.data import load_image
from workers.ml.tasks.base import Sample
from workers.ml.tasks.detection.data import is_ignored
from workers.ml.tasks.oriented_detection.geometry import MIN_SIDE, map_boxes, normalise_le90


def obb_targets(sample: Sample, classes: list[str]) -> tuple[dict[str, Any], int]:
    """{"obb": [[cx, cy, w, h, θ rad]], "labels", "ignore_obb", "ignore_labels"} in stored
    pixels (le90), and how many degenerate boxes were dropped."""
    index = {name: i for i, name in enumerate(classes)}
    kept: dict[bool, tuple[list[list[float]], list[int]]] = {False: ([], []), True: ([], [])}
    dropped = 0
    for ann in sample.annotations:
        if ann.kind != "obb" or ann.class_name not in index:
            continue
        g = ann.geometry
        try:
            raw = [float(g[k]) for k in ("cx", "cy", "w", "h", "angle")]
        except (KeyError, TypeError, ValueError):
            dropped += 1
            continue
        if not all(math.isfinite(v) for v in raw) or min(abs(raw[2]), abs(raw[3])) < MIN_SIDE:
            dropped += 1
            continue
        raw[2], raw[3] = abs(raw[2]), abs(raw[3])
        box = normalise_le90(np.array(raw))[0]
        box[4] = math.radians(box[4])
        boxes, labels = kept[is_ignored(ann.attributes)]
        boxes.append([float(v) for v in box])
        labels.append(index[ann.class_name])  # type: ignore[index]
    target = {
        "obb": kept[False][0],
        "labels": kept[False][1],
        "ignore_obb": kept[True][0],
        "ignore_labels": kept[True][1],
    }
    return target, dropped


def augment_matrix(size: int, augment: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    """A random 2x3 affine map of an SxS image about its centre."""
    m = np.eye(3)
    if augment.get("hflip") and rng.random() < 0.5:
        m = np.diag([-1.0, 1.0, 1.0]) @ m
    if augment.get("vflip") and rng.random() < 0.5:
        m = np.diag([1.0, -1.0, 1.0]) @ m
    turn = math.pi / 2 * int(rng.integers(4)) if augment.get("rotate90") else 0.0
    limit = float(augment.get("rotation") or 0.0)
    angle = turn + math.radians(rng.uniform(-limit, limit))
    jitter = float(augment.get("scale_jitter") or 0.0)
    scale = math.exp(rng.uniform(-jitter, jitter)) if jitter > 0 else 1.0
    c, s = math.cos(angle) * scale, math.sin(angle) * scale
    m = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ m
    centre = size / 2
    shift = np.array([[1.0, 0, centre], [0, 1.0, centre], [0, 0, 1.0]])
    back = np.array([[1.0, 0, -centre], [0, 1.0, -centre], [0, 0, 1.0]])
    return (shift @ m @ back)[:2]


def warp(image: torch.Tensor, matrix: np.ndarray) -> torch.Tensor:
    """A CHW image through a 2x3 affine map (pixel coordinates), bilinear, zeros outside."""
    size = image.shape[-1]
    inverse = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2]
    # grid_sample's normalised coordinates (align_corners=False): u = 2x/S - 1.
    to_norm = np.array([[2 / size, 0, -1], [0, 2 / size, -1], [0, 0, 1]])
    from_norm = np.linalg.inv(to_norm)
    theta = to_norm[:2] @ np.vstack([inverse, [0, 0, 1]]) @ from_norm
    grid = torch.nn.functional.affine_grid(
        torch.tensor(theta, dtype=torch.float32)[None], [1, *image.shape], align_corners=False
    )
    return torch.nn.functional.grid_sample(image[None], grid, align_corners=False)[0]


class OrientedDataset(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """(normalised SxS image, target {"obb" (SxS pixels, radians), "labels"}, index);
    without `augment` only the eval resize (and the ignored boxes are kept for metrics)."""

    def __init__(
        self,
        samples: list[Sample],
        size: int,
        mean: list[float],
        std: list[float],
        augment: dict[str, Any] | None = None,
    ) -> None:
        self.samples = samples
        self.size = size
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)
        self.augment = augment
        self.cache: dict[int, tuple[Image.Image, tuple[int, int]]] = {}

    def __len__(self) -> int:
        return len(self.samples)

    def _resized(self, index: int) -> tuple[Image.Image, tuple[int, int]]:
        """The image at SxS and its original (width, height)."""
        if index not in self.cache:
            picture = load_image(self.samples[index].path)
            resized = picture.resize((self.size, self.size), Image.BILINEAR)
            self.cache[index] = (resized, picture.size)
        return self.cache[index]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor], int]:
        from torchvision.transforms.v2 import functional as F  # noqa: N812

        sample = self.samples[index]
        picture, (width, height) = self._resized(index)
        resize = np.array([[self.size / width, 0, 0], [0, self.size / height, 0]])
        target = sample.target or {"obb": [], "labels": []}
        obb = map_boxes(np.array(target["obb"], np.float64).reshape(-1, 5), resize)
        labels = np.array(target["labels"], np.int64)
        image = F.pil_to_tensor(picture).float() / 255.0
        if self.augment is not None:
            # Seeded from torch: loader workers get distinct torch seeds, numpy's would repeat.
            rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,))))
            strength = float(self.augment.get("color_jitter") or 0.0)
            if strength > 0:
                image = F.adjust_brightness(image, 1 + rng.uniform(-strength, strength))
                image = F.adjust_contrast(image, 1 + rng.uniform(-strength, strength))
            matrix = augment_matrix(self.size, self.augment, rng)
            x = warp((image - self.mean) / self.std, matrix)
            obb = map_boxes(obb, matrix)
            inside = (
                (obb[:, 0] >= 0) & (obb[:, 0] < self.size) & (obb[:, 1] >= 0)
                if len(obb)
                else np.zeros(0, bool)
            )
            if len(obb):
                inside &= obb[:, 1] < self.size
            obb, labels = obb[inside], labels[inside]
        else:
            x = (image - self.mean) / self.std
        out: dict[str, torch.Tensor] = {
            "obb": torch.tensor(obb, dtype=torch.float32).reshape(-1, 5),
            "labels": torch.tensor(labels, dtype=torch.int64),
        }
        if self.augment is None:
            ignore = map_boxes(
                np.array(target.get("ignore_obb", []), np.float64).reshape(-1, 5), resize
            )
            out["ignore_obb"] = torch.tensor(ignore, dtype=torch.float32).reshape(-1, 5)
            out["ignore_labels"] = torch.tensor(target.get("ignore_labels", []), dtype=torch.int64)
        return x, out, index
