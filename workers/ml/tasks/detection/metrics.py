"""COCO mAP for boxes through torchmetrics' MeanAveragePrecision (pycocotools backend).

IoU thresholds are passed as float64 values: torchmetrics builds them in float32 otherwise,
and then differs from calling COCOeval directly by up to 1.4e-3 (NOTES.md); with float64
they agree to within 1e-4 (tests/ml/test_detection_metrics.py checks it against COCOeval).
Ignored truth (crowd, difficult) goes in as `iscrowd`, which COCO matches but never counts.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

IOU_THRESHOLDS = [round(0.5 + 0.05 * k, 2) for k in range(10)]  # python floats: float64
SUMMARY_KEYS = ("map", "map_50", "map_75", "map_small", "map_medium", "map_large", "mar_100")
RENAMED = {"map_50": "map50", "map_75": "map75", "mar_100": "mar100"}
RECALLS = 101


def new_metric(per_class: bool = True, iou_type: str | tuple[str, ...] = "bbox") -> Any:
    """COCO mAP; iou_type ("bbox", "segm") scores boxes and masks in one pass (the result's
    keys then carry a "bbox_" / "segm_" prefix)."""
    from torchmetrics.detection import MeanAveragePrecision

    return MeanAveragePrecision(
        box_format="xyxy",
        iou_type=iou_type,
        iou_thresholds=list(IOU_THRESHOLDS),
        class_metrics=per_class,
        extended_summary=per_class,
        backend="pycocotools",
    )


def as_preds(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> dict[str, torch.Tensor]:
    return {
        "boxes": torch.as_tensor(np.asarray(boxes, np.float32).reshape(-1, 4)),
        "scores": torch.as_tensor(np.asarray(scores, np.float32).reshape(-1)),
        "labels": torch.as_tensor(np.asarray(labels, np.int64).reshape(-1)),
    }


def as_target(
    boxes: np.ndarray, labels: np.ndarray, ignored: np.ndarray
) -> dict[str, torch.Tensor]:
    """Truth for the metric; ignored boxes (crowd, difficult) go in as COCO crowd regions of
    their class: a detection on one is neither a hit nor a false positive."""
    return {
        "boxes": torch.as_tensor(np.asarray(boxes, np.float32).reshape(-1, 4)),
        "labels": torch.as_tensor(np.asarray(labels, np.int64).reshape(-1)),
        "iscrowd": torch.as_tensor(np.asarray(ignored, np.int64).reshape(-1)),
    }


def _number(value: Any) -> float | None:
    number = float(value)
    return None if number < 0 or np.isnan(number) else number  # COCO's -1: nothing to score


def summarise(metric: Any, classes: list[str]) -> dict[str, Any]:
    """The aggregate keys (map, map50, map75, map_small/medium/large, mar100), per-class AP and
    AR, and a precision-recall curve per class at IoU 0.5 (101 recall points)."""
    return summarise_result(metric.compute(), classes)


def summarise_result(
    result: dict[str, Any], classes: list[str], prefix: str = ""
) -> dict[str, Any]:
    """`summarise` of a computed result; `prefix` picks one IoU type of a two-type metric
    ("segm_", "bbox_")."""
    out: dict[str, Any] = {}
    for key in SUMMARY_KEYS:
        out[RENAMED.get(key, key)] = _number(result[prefix + key])
    present = [int(c) for c in torch.as_tensor(result.get("classes", torch.zeros(0))).reshape(-1)]
    per_ap = torch.as_tensor(result.get(prefix + "map_per_class", torch.zeros(0))).reshape(-1)
    per_ar = torch.as_tensor(result.get(prefix + "mar_100_per_class", torch.zeros(0))).reshape(-1)
    precision = result.get(prefix + "precision")  # [T, R, K, A, M]
    per_class = []
    curves = []
    for position, label in enumerate(present):
        index = label - 1
        if not 0 <= index < len(classes):
            continue
        ap50 = None
        curve: list[float] = []
        if precision is not None and precision.ndim == 5 and position < precision.shape[2]:
            values = precision[0, :, position, 0, -1].double().numpy()
            valid = values[values >= 0]
            ap50 = float(valid.mean()) if len(valid) == len(values) else None
            curve = [round(max(0.0, float(v)), 4) for v in values]
        per_class.append(
            {
                "index": index,
                "class": classes[index],
                "ap": _number(per_ap[position]) if position < len(per_ap) else None,
                "ap50": ap50,
                "ar100": _number(per_ar[position]) if position < len(per_ar) else None,
            }
        )
        if curve:
            curves.append({"index": index, "class": classes[index], "precision": curve})
    out["per_class"] = per_class
    out["pr_curves"] = {
        "recall": [round(r / (RECALLS - 1), 2) for r in range(RECALLS)],
        "classes": curves,
    }
    return out
