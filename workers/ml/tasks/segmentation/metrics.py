"""Dataset-level segmentation metrics: torchmetrics' MulticlassJaccardIndex (IoU per class
over every pixel of every image, then the mean over classes present — not the per-image
average that MeanIoU gives) and the other measures from the same confusion matrix."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from workers.ml.tasks.segmentation.decode import IGNORE, scores


class PixelMetrics:
    """Accumulates predicted and true masks (any sizes) and reports mIoU, pixel accuracy,
    mean Dice — each with and without the background class — and per-class IoU."""

    def __init__(self, num_classes: int, background: int | None) -> None:
        from torchmetrics.classification import MulticlassJaccardIndex

        self.num_classes = num_classes
        self.background = background
        self.jaccard = MulticlassJaccardIndex(
            num_classes=num_classes, average="macro", ignore_index=IGNORE, validate_args=False
        )

    def update(self, pred: torch.Tensor | np.ndarray, truth: torch.Tensor | np.ndarray) -> None:
        pred_t = torch.as_tensor(np.asarray(pred) if isinstance(pred, np.ndarray) else pred)
        truth_t = torch.as_tensor(np.asarray(truth) if isinstance(truth, np.ndarray) else truth)
        self.jaccard.update(pred_t.long().cpu().reshape(-1), truth_t.long().cpu().reshape(-1))

    def confusion(self) -> np.ndarray:
        return self.jaccard.confmat.cpu().numpy().astype(np.int64)  # type: ignore[no-any-return]

    def compute(self) -> dict[str, Any]:
        cm = self.confusion()
        result = scores(cm, self.background)
        if cm.sum():
            result["miou"] = float(self.jaccard.compute())
        return result
