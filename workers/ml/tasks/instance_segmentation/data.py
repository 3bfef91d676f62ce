"""Instance-segmentation data: per-instance masks rasterised from polygons (COCO, YOLO-seg) and
stored instance mask PNGs (COCO RLE, compressed or not, is decoded to a PNG at import), joint
image + mask + box transforms (tv_tensors.Mask and BoundingBoxes through the detection task's
augmentations), and the collate.

A target is a list of instances {"label", "ignore", "rings" | "file"} in stored-image pixels,
rasterised when an image is loaded. Crowd regions (COCO iscrowd) and objects that have only a
box are `ignore`: they never train, and evaluation matches them to nothing and counts nothing.
Boxes are always the extent of the (transformed) mask, so a rotated or cropped instance keeps
a tight box. Labels are class index + 1 (Mask R-CNN's background is 0).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from workers.ml.tasks.base import Sample
from workers.ml.tasks.detection.data import DetectionDataset, is_ignored, train_ops

MIN_PIXELS = 1  # instances whose mask covers fewer pixels are dropped after transforms


def instance_targets(sample: Sample, classes: list[str]) -> tuple[list[dict[str, Any]], int]:
    """The sample's instances and how many shapes could not be used (fewer than 3 points)."""
    index = {name: i for i, name in enumerate(classes)}
    out: list[dict[str, Any]] = []
    bad = 0
    for ann in sample.annotations:
        if ann.class_name not in index:
            continue
        label = index[ann.class_name] + 1  # type: ignore[index]
        ignore = is_ignored(ann.attributes)
        g = ann.geometry
        if ann.kind == "polygon":
            rings = [r for r in (g.get("rings") or [g.get("points") or []]) if len(r) >= 3]
            if not rings:
                bad += 1
                continue
            out.append({"label": label, "ignore": ignore, "rings": rings})
        elif ann.kind == "mask" and g.get("file"):
            out.append(
                {
                    "label": label,
                    "ignore": ignore,
                    "file": str(g["file"]),
                    "value": g.get("value", 1),
                }
            )
        elif ann.kind == "bbox":
            try:
                x, y, w, h = (float(g[k]) for k in ("x", "y", "w", "h"))
            except (KeyError, TypeError, ValueError):
                bad += 1
                continue
            # A box-only object has no mask to learn or score: ignored like a crowd region.
            rect = [[x, y], [x + w, y], [x + w, y + h], [x, y + h]]
            out.append({"label": label, "ignore": True, "rings": [rect]})
    return out, bad


def rasterise(instance: dict[str, Any], width: int, height: int) -> np.ndarray:
    """One instance as a uint8 [H, W] mask (1 = the object)."""
    if "file" in instance:
        with Image.open(Path(instance["file"])) as picture:
            stored = np.asarray(picture)
        if stored.ndim == 3:
            stored = stored[..., 0]
        mask = (stored == int(instance.get("value", 1))).astype(np.uint8)
        if mask.shape != (height, width):
            mask = np.asarray(
                Image.fromarray(mask).resize((width, height), Image.Resampling.NEAREST)
            )
        return mask
    mask = np.zeros((height, width), np.uint8)
    for ring in instance["rings"]:  # even-odd: a ring inside another is a hole
        layer = Image.new("L", (width, height), 0)
        ImageDraw.Draw(layer).polygon([(float(x), float(y)) for x, y, *_ in ring], fill=1)
        mask ^= np.asarray(layer, np.uint8)
    return mask


def masks_of(
    instances: list[dict[str, Any]], width: int, height: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(masks [N, H, W] uint8, labels [N], ignore [N] bool) of a target."""
    if not instances:
        return (np.zeros((0, height, width), np.uint8), np.zeros(0, np.int64), np.zeros(0, bool))
    masks = np.stack([rasterise(i, width, height) for i in instances])
    labels = np.array([i["label"] for i in instances], np.int64)
    ignore = np.array([bool(i["ignore"]) for i in instances])
    return masks, labels, ignore


def mask_boxes(masks: torch.Tensor) -> torch.Tensor:
    """xyxy extents of [N, H, W] masks (pixel edges: a one-pixel mask is 1 px wide)."""
    from torchvision.ops import masks_to_boxes

    if not len(masks):
        return torch.zeros((0, 4))
    boxes = masks_to_boxes(masks.bool())
    return boxes + torch.tensor([0.0, 0.0, 1.0, 1.0])


class InstanceDataset(DetectionDataset):
    """(normalised SxS image, {"boxes", "labels", "masks"} in SxS pixels, index); validation
    (augment None) also returns the ignored instances as "ignore_masks"/"ignore_labels"."""

    def __init__(
        self,
        samples: list[Sample],
        size: int,
        mean: list[float],
        std: list[float],
        augment: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(samples, size, mean, std, None)
        if augment is not None:
            from torchvision import tv_tensors

            fill = {tv_tensors.Image: 114, tv_tensors.Mask: 0, "others": 0}
            self.ops = train_ops(size, augment, fill=fill)
            self.resize_only = False
        self.mask_cache: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def _masks(self, index: int, width: int, height: int) -> tuple[np.ndarray, ...]:
        if index not in self.mask_cache:
            instances = self.samples[index].target or []
            self.mask_cache[index] = masks_of(instances, width, height)
        return self.mask_cache[index]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor], int]:  # type: ignore[override]
        from torchvision import tv_tensors
        from torchvision.transforms.v2 import functional as F  # noqa: N812

        picture = self._image(index)
        width, height = picture.size
        all_masks, all_labels, ignore = self._masks(index, width, height)
        masks = torch.from_numpy(all_masks[~ignore])
        labels = torch.from_numpy(all_labels[~ignore])
        if self.resize_only:
            resized = picture.resize((self.size, self.size), Image.BILINEAR)
            image = F.pil_to_tensor(resized)
            masks = F.resize(tv_tensors.Mask(masks), [self.size, self.size])
        else:
            boxes = tv_tensors.BoundingBoxes(
                mask_boxes(masks), format="XYXY", canvas_size=(height, width)
            )
            out = self.ops(
                {
                    "image": tv_tensors.Image(F.pil_to_tensor(picture)),
                    "boxes": boxes,
                    "masks": tv_tensors.Mask(masks),
                    "labels": labels,
                }
            )
            image, masks, labels = out["image"], out["masks"], out["labels"]
        masks = masks.as_subclass(torch.Tensor).to(torch.uint8).reshape(-1, self.size, self.size)
        keep = masks.flatten(1).sum(1) >= MIN_PIXELS
        masks, labels = masks[keep], labels[keep]
        x = (image.as_subclass(torch.Tensor).float() / 255.0 - self.mean) / self.std
        target = {"boxes": mask_boxes(masks), "labels": labels, "masks": masks}
        if self.resize_only:
            crowd = torch.from_numpy(all_masks[ignore])
            crowd = F.resize(tv_tensors.Mask(crowd), [self.size, self.size])
            target["ignore_masks"] = crowd.as_subclass(torch.Tensor).reshape(
                -1, self.size, self.size
            )
            target["ignore_labels"] = torch.from_numpy(all_labels[ignore])
        return x, target, index
