"""Segmentation outputs: logits [C, h, w] at the model's input size → an index mask in the
original image's pixels, its PNG and the share of every class.

Numpy and PIL only: the predictor, the export's parity check, the evaluation and
examples/predict_onnx.py read masks the same way. Logits are resized bilinearly to the
original size before the argmax (not the argmax resized), so borders follow the image.
The metric helpers turn a pixel confusion matrix into IoU, Dice and accuracy; 255 is ignore
everywhere.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
from PIL import Image

from workers.ml.tasks.base import Decoder, Outputs

IGNORE = 255


def resize_logits(logits: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """[C, h, w] → [C, H, W] (size = width, height), bilinear per class (PIL float images)."""
    width, height = size
    logits = np.asarray(logits, dtype=np.float32)
    if logits.shape[1:] == (height, width):
        return logits
    return np.stack(
        [
            np.asarray(Image.fromarray(channel).resize((width, height), Image.Resampling.BILINEAR))
            for channel in logits
        ]
    )


def softmax(logits: np.ndarray, axis: int = 0) -> np.ndarray:
    shifted = logits - logits.max(axis=axis, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=axis, keepdims=True)  # type: ignore[no-any-return]


def mask_field(mask: np.ndarray, size: tuple[int, int]) -> dict[str, Any]:
    """A mask in a prediction answer: an 8-bit PNG, base64, with its size."""
    return {
        "format": "png",
        "encoding": "base64",
        "width": int(size[0]),
        "height": int(size[1]),
        "data": base64.b64encode(mask_png(mask)).decode("ascii"),
    }


def mask_png(mask: np.ndarray) -> bytes:
    """An index mask as an 8-bit greyscale PNG (pixel value = class index)."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(mask, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def class_shares(mask: np.ndarray, classes: list[str]) -> list[dict[str, Any]]:
    """[{"class", "index", "pixels", "fraction"}] for every class present, largest first."""
    counts = np.bincount(mask.reshape(-1), minlength=len(classes))
    total = int(counts[: len(classes)].sum()) or 1
    found = [
        {
            "class": classes[i],
            "index": i,
            "pixels": int(counts[i]),
            "fraction": float(counts[i]) / total,
        }
        for i in range(len(classes))
        if counts[i]
    ]
    return sorted(found, key=lambda item: -item["pixels"])


def confusion(truth: np.ndarray, pred: np.ndarray, classes: int) -> np.ndarray:
    """Pixel confusion matrix [true, predicted] (int64); ignore pixels (255) in truth skipped."""
    truth = np.asarray(truth, dtype=np.int64).reshape(-1)
    pred = np.asarray(pred, dtype=np.int64).reshape(-1)
    keep = (truth != IGNORE) & (truth < classes) & (pred < classes)
    flat = truth[keep] * classes + pred[keep]
    return np.bincount(flat, minlength=classes * classes).reshape(classes, classes)


def per_class(cm: np.ndarray) -> dict[str, np.ndarray]:
    """IoU, Dice and accuracy (recall) per class; NaN where a class is in neither truth nor
    prediction (IoU, Dice) or not in truth (accuracy)."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    truth = cm.sum(axis=1)
    pred = cm.sum(axis=0)
    union = truth + pred - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
        dice = np.where(truth + pred > 0, 2 * tp / (truth + pred), np.nan)
        accuracy = np.where(truth > 0, tp / truth, np.nan)
    return {"iou": iou, "dice": dice, "accuracy": accuracy}


def _mean(values: np.ndarray) -> float | None:
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else None


def scores(cm: np.ndarray, background: int | None) -> dict[str, Any]:
    """Dataset-level metrics of a confusion matrix, with and without the background class:
    mIoU and mean Dice over the classes present (in truth or prediction), pixel accuracy over
    valid pixels (without background: over pixels whose true class is not background)."""
    cm = np.asarray(cm, dtype=np.float64)
    parts = per_class(cm)
    total = cm.sum()
    keep = np.ones(len(cm), dtype=bool)
    if background is not None and 0 <= background < len(cm):
        keep[background] = False
    fg_total = cm[keep].sum()
    return {
        "miou": _mean(parts["iou"]),
        "miou_no_bg": _mean(parts["iou"][keep]),
        "dice": _mean(parts["dice"]),
        "dice_no_bg": _mean(parts["dice"][keep]),
        "pixel_accuracy": float(np.trace(cm) / total) if total else None,
        "pixel_accuracy_no_bg": float(np.diag(cm)[keep].sum() / fg_total) if fg_total else None,
        "per_class_iou": [None if np.isnan(v) else float(v) for v in parts["iou"]],
    }


def background_of(classes: list[str]) -> int | None:
    """The index of the background class (named like "background"), if the model has one."""
    for index, name in enumerate(classes):
        if name.strip().casefold() in {"background", "_background_", "bg", "__background__"}:
            return index
    return None


class SegmentationDecoder(Decoder):
    """Per-pixel argmax of bilinearly resized logits; the metric is dataset-level mIoU."""

    task = "segmentation"
    primary_metric = "miou"

    def mask(self, logits: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        return resize_logits(logits, size).argmax(axis=0).astype(np.uint8)

    def decode(
        self,
        outputs: Outputs,
        *,
        meta: dict[str, Any],
        size: tuple[int, int],
        options: dict[str, Any],
    ) -> dict[str, Any]:
        """{"mask": {"format": "png", "encoding": "base64", "width", "height", "data"} (an
        8-bit index PNG, value = class index), "classes": [{"class", "index", "pixels",
        "fraction"}] (share of the image's pixels, largest first)}."""
        classes: list[str] = list(meta["classes"])
        mask = self.mask(np.asarray(outputs["logits"]), size)
        return {"mask": mask_field(mask, size), "classes": class_shares(mask, classes)}

    def metric(self, masks: list[np.ndarray], targets: list[np.ndarray], classes: int) -> float:
        """Dataset-level mIoU of predicted index masks against target masks of the same size."""
        cm = np.zeros((classes, classes), dtype=np.int64)
        for pred, truth in zip(masks, targets, strict=True):
            cm += confusion(truth, pred, classes)
        value = scores(cm, None)["miou"]
        return float("nan") if value is None else value
