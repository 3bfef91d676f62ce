"""Instance mAP: torchmetrics' MeanAveragePrecision with iou_type ("bbox", "segm") through the
detection task's helpers (float64 IoU thresholds, pycocotools backend, crowd as iscrowd), so
mask and box AP agree with pycocotools' COCOeval (tests/ml/test_instance_metrics.py).

Truth boxes are the masks' extents (xyxy, pixel edges), as in training; predicted boxes are
the box head's, so box AP scores the detector and mask AP the masks.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from workers.ml.tasks.detection import metrics as det_metrics

IOU_TYPES = ("bbox", "segm")


def new_metric(per_class: bool = True) -> Any:
    return det_metrics.new_metric(per_class=per_class, iou_type=IOU_TYPES)


def extents(masks: np.ndarray) -> np.ndarray:
    """xyxy boxes of [N, H, W] masks; an empty mask gets a zero box."""
    masks = np.asarray(masks, bool)
    boxes = np.zeros((len(masks), 4), np.float32)
    for i, mask in enumerate(masks):
        ys, xs = np.nonzero(mask)
        if len(xs):
            boxes[i] = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    return boxes


def as_preds(
    boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, masks: np.ndarray
) -> dict[str, torch.Tensor]:
    out = det_metrics.as_preds(boxes, scores, labels)
    height, width = np.asarray(masks).shape[-2:] if np.asarray(masks).ndim == 3 else (0, 0)
    out["masks"] = torch.as_tensor(np.asarray(masks, bool).reshape(-1, height, width))
    return out


def as_target(masks: np.ndarray, labels: np.ndarray, ignored: Any) -> dict[str, torch.Tensor]:
    masks = np.asarray(masks, bool)
    out = det_metrics.as_target(extents(masks), labels, np.asarray(ignored))
    out["masks"] = torch.as_tensor(masks.reshape(len(masks), *masks.shape[-2:]))
    return out


def headline(result: dict[str, Any]) -> dict[str, float]:
    """The validation keys: map_mask (picks the best checkpoint), map50_mask, map_box,
    map50_box; COCO's -1 (nothing to score) as 0."""
    return {
        "map_mask": max(0.0, float(result["segm_map"])),
        "map50_mask": max(0.0, float(result["segm_map_50"])),
        "map_box": max(0.0, float(result["bbox_map"])),
        "map50_box": max(0.0, float(result["bbox_map_50"])),
    }


def summarise(metric: Any, classes: list[str]) -> dict[str, Any]:
    """Aggregate keys for masks (map_mask, map50_mask, map75_mask, ...) and boxes (map_box,
    map50_box), with per-class mask AP and precision-recall curves at mask IoU 0.5."""
    result = metric.compute()
    masks = det_metrics.summarise_result(result, classes, "segm_")
    boxes = det_metrics.summarise_result(result, classes, "bbox_")
    out: dict[str, Any] = {}
    for key, value in masks.items():
        if key in ("per_class", "pr_curves"):
            continue
        out[f"{key}_mask"] = value
    out["map_box"], out["map50_box"], out["map75_box"] = (
        boxes["map"],
        boxes["map50"],
        boxes["map75"],
    )
    box_ap = {row["index"]: row for row in boxes["per_class"]}
    out["per_class"] = [
        {
            **row,
            "box_ap": box_ap.get(row["index"], {}).get("ap"),
            "box_ap50": box_ap.get(row["index"], {}).get("ap50"),
        }
        for row in masks["per_class"]
    ]
    out["pr_curves"] = masks["pr_curves"]
    return out


def mask_iou(pred: np.ndarray, truth: np.ndarray, crowd: np.ndarray | None = None) -> np.ndarray:
    """IoU matrix [P, T] of boolean masks [P, H, W] and [T, H, W]; against a crowd truth it is
    the share of the prediction inside it (COCO's rule)."""
    pred, truth = np.asarray(pred, bool), np.asarray(truth, bool)
    if not len(pred) or not len(truth):
        return np.zeros((len(pred), len(truth)))
    pred = pred.reshape(len(pred), -1)
    truth = truth.reshape(len(truth), -1)
    inter = pred.astype(np.float32) @ truth.astype(np.float32).T
    area_p = pred.sum(1).astype(np.float64)
    area_t = truth.sum(1).astype(np.float64)
    union = area_p[:, None] + area_t[None, :] - inter
    if crowd is not None:
        union = np.where(np.asarray(crowd, bool)[None, :], area_p[:, None], union)
    return np.divide(inter, union, out=np.zeros_like(union), where=union > 0)
