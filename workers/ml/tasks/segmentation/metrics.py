"""Dataset-level segmentation metrics: torchmetrics' MulticlassJaccardIndex (IoU per class
over every pixel of every image, then the mean over classes present — not the per-image
average that MeanIoU gives) and the other measures from the same confusion matrix."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from workers.ml.tasks.segmentation.decode import IGNORE, scores


@contextmanager
def _cpu_bincount() -> Iterator[None]:
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(False)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)


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
        """Add masks (any shape; 255 in truth = ignore) to the confusion matrix, on the CPU.

        With deterministic algorithms on (training), torchmetrics swaps torch.bincount for a
        pixels x classes² comparison matrix: gigabytes for one 640 px image of 80 classes.
        Bincount on the CPU is deterministic, so the update runs with the switch off."""
        p = torch.as_tensor(pred).reshape(-1).long().cpu()
        t = torch.as_tensor(truth).reshape(-1).long().cpu()
        with _cpu_bincount():
            self.jaccard.update(p, t)

    def confusion(self) -> np.ndarray:
        return self.jaccard.confmat.cpu().numpy().astype(np.int64)  # type: ignore[no-any-return]

    def compute(self) -> dict[str, Any]:
        cm = self.confusion()
        result = scores(cm, self.background)
        if cm.sum():
            result["miou"] = float(self.jaccard.compute())
        return result
