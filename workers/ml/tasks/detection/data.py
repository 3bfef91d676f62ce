"""Detection data: targets from box annotations, joint image+box transforms (torchvision v2
with tv_tensors.BoundingBoxes), and the collate that keeps targets per image.

Targets hold boxes as xyxy in stored-image pixels and labels as class index + 1 (the
detectors' background is 0). Crowd (COCO iscrowd) and difficult (VOC) boxes are left out of
training targets and kept as `ignore` boxes for evaluation, where they match nothing and
count for nothing. Images without boxes stay in as negatives. After the transforms every image
is SxS and normalised exactly as the shared eval transform does, so training, evaluation and
the exported model see the same input.
"""

from __future__ import annotations

from typing import Any

import torch
from PIL import Image

from workers.ml.data import load_image
from workers.ml.tasks.base import Sample

MIN_SIDE = 1.0  # px: boxes thinner than this are dropped (with a note) before training


def is_ignored(attributes: dict[str, Any]) -> bool:
    return bool(attributes.get("iscrowd")) or bool(attributes.get("difficult"))


def box_targets(sample: Sample, classes: list[str]) -> tuple[dict[str, Any], int]:
    """{"boxes": [[x0, y0, x1, y1], ...], "labels": [...], "ignore_boxes", "ignore_labels"} from
    the sample's bbox annotations (class index + 1), and how many degenerate boxes were
    dropped."""
    index = {name: i for i, name in enumerate(classes)}
    boxes: list[list[float]] = []
    labels: list[int] = []
    ignore: list[list[float]] = []
    ignore_labels: list[int] = []
    dropped = 0
    for ann in sample.annotations:
        if ann.kind != "bbox" or ann.class_name not in index:
            continue
        g = ann.geometry
        try:
            x, y, w, h = (float(g[k]) for k in ("x", "y", "w", "h"))
        except (KeyError, TypeError, ValueError):
            dropped += 1
            continue
        if w < MIN_SIDE or h < MIN_SIDE:
            dropped += 1
            continue
        box = [x, y, x + w, y + h]
        label = index[ann.class_name] + 1  # type: ignore[index]
        if is_ignored(ann.attributes):
            ignore.append(box)
            ignore_labels.append(label)
        else:
            boxes.append(box)
            labels.append(label)
    target = {
        "boxes": boxes,
        "labels": labels,
        "ignore_boxes": ignore,
        "ignore_labels": ignore_labels,
    }
    return target, dropped


def train_ops(size: int, augment: dict[str, Any], fill: Any = 114) -> Any:
    """Geometric and photometric augmentations that move, clip or drop boxes with the image;
    `fill` (a value, or a value per tv_tensor type) pads zoomed-out borders (instance masks
    pass 0 for theirs)."""
    from torchvision.transforms import v2

    ops: list[Any] = []
    jitter = float(augment.get("scale_jitter") or 0.0)
    if jitter > 0:
        ops.append(
            v2.RandomApply([v2.RandomZoomOut(fill=fill, side_range=(1.0, 1.0 + jitter))], p=0.5)
        )
    if augment.get("random_resized_crop"):
        ops.append(
            v2.RandomApply([v2.RandomIoUCrop(sampler_options=[0.3, 0.5, 0.7, 0.9, 1.0])], p=0.5)
        )
    if augment.get("hflip"):
        ops.append(v2.RandomHorizontalFlip())
    if augment.get("vflip"):
        ops.append(v2.RandomVerticalFlip())
    if augment.get("rotation"):
        ops.append(v2.RandomRotation(float(augment["rotation"])))
    strength = float(augment.get("color_jitter") or 0.0)
    if strength > 0:
        ops.append(v2.ColorJitter(strength, strength, strength, min(0.1, strength / 2)))
    if jitter > 0:  # zoom in too: a random crop of 75-100 % that keeps most objects
        ops.append(
            v2.RandomApply([v2.RandomResizedCrop(size, scale=(0.75, 1.0), antialias=True)], p=0.3)
        )
    ops.append(v2.Resize((size, size), antialias=True))
    ops.append(v2.SanitizeBoundingBoxes(min_size=MIN_SIDE))
    return v2.Compose(ops)


class DetectionDataset(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """(normalised SxS image, target dict in SxS pixels, index); train=False applies only the
    resize (the eval transform)."""

    def __init__(
        self,
        samples: list[Sample],
        size: int,
        mean: list[float],
        std: list[float],
        augment: dict[str, Any] | None = None,
        cache: bool = True,
    ) -> None:
        from torchvision.transforms import v2

        self.samples = samples
        self.size = size
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)
        self.ops = (
            train_ops(size, augment)
            if augment is not None
            else v2.Compose([v2.Resize((size, size), antialias=True)])
        )
        self.resize_only = augment is None
        self.cache: dict[int, Image.Image] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.samples)

    def _image(self, index: int) -> Image.Image:
        if self.cache is None:
            return load_image(self.samples[index].path)
        if index not in self.cache:
            self.cache[index] = load_image(self.samples[index].path)
        return self.cache[index]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor], int]:
        from torchvision import tv_tensors
        from torchvision.transforms.v2 import functional as F  # noqa: N812

        sample = self.samples[index]
        picture = self._image(index)
        width, height = picture.size
        target = sample.target or {"boxes": [], "labels": []}
        boxes = tv_tensors.BoundingBoxes(
            torch.tensor(target["boxes"], dtype=torch.float32).reshape(-1, 4),
            format="XYXY",
            canvas_size=(height, width),
        )
        labels = torch.tensor(target["labels"], dtype=torch.int64)
        if self.resize_only:
            # Exactly the shared eval transform: PIL bilinear resize, then scale boxes.
            resized = picture.resize((self.size, self.size), Image.BILINEAR)
            image = F.pil_to_tensor(resized)
            scale = torch.tensor([self.size / width, self.size / height] * 2)
            out_boxes = boxes.as_subclass(torch.Tensor) * scale
        else:
            out = self.ops(
                {
                    "image": tv_tensors.Image(F.pil_to_tensor(picture)),
                    "boxes": boxes,
                    "labels": labels,
                }
            )
            image = out["image"].as_subclass(torch.Tensor)
            out_boxes = out["boxes"].as_subclass(torch.Tensor)
            labels = out["labels"]
        x = (image.float() / 255.0 - self.mean) / self.std
        out_target = {"boxes": out_boxes.float().reshape(-1, 4), "labels": labels}
        if self.resize_only:  # validation scores crowd/difficult boxes as ignored, like evaluation
            ignore = torch.tensor(target.get("ignore_boxes", []), dtype=torch.float32)
            out_target["ignore_boxes"] = ignore.reshape(-1, 4) * scale
            out_target["ignore_labels"] = torch.tensor(
                target.get("ignore_labels", []), dtype=torch.int64
            )
        return x, out_target, index


def collate(batch: list[Any]) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]], list[int]]:
    images = torch.stack([item[0] for item in batch])
    return images, [item[1] for item in batch], [item[2] for item in batch]
