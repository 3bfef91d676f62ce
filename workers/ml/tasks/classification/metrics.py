"""Classification metrics in numpy, shared by validation, test evaluation and thresholds.

(Package `workers.ml.metrics`: this module is its __init__; the torchmetrics-based evaluation
metrics live in `workers.ml.metrics.classification`.)
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _f1_per_class(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """pred/true: boolean [N, C] -> per-class F1 (0 where undefined)."""
    tp = (pred & true).sum(0).astype(np.float64)
    fp = (pred & ~true).sum(0).astype(np.float64)
    fn = (~pred & true).sum(0).astype(np.float64)
    denom = 2 * tp + fp + fn
    return np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)


def multiclass_metrics(logits: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    num_classes = logits.shape[1]
    pred = logits.argmax(1)
    onehot_pred = np.eye(num_classes, dtype=bool)[pred]
    onehot_true = np.eye(num_classes, dtype=bool)[targets]
    present = onehot_true.any(0) | onehot_pred.any(0)
    f1 = _f1_per_class(onehot_pred, onehot_true)
    shifted = logits - logits.max(1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    loss = float(-log_probs[np.arange(len(targets)), targets].mean()) if len(targets) else 0.0
    return {
        "acc": float((pred == targets).mean()) if len(targets) else 0.0,
        "f1_macro": float(f1[present].mean()) if present.any() else 0.0,
        "loss": loss,
    }


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def tune_thresholds(probs: np.ndarray, targets: np.ndarray) -> list[float]:
    """Per class, the threshold in 0.05..0.95 with the best F1 on these samples (0.5 if none)."""
    grid = np.round(np.arange(0.05, 0.951, 0.05), 2)
    thresholds = []
    truth = targets > 0.5
    for c in range(probs.shape[1]):
        if not truth[:, c].any():
            thresholds.append(0.5)
            continue
        scores = [_f1_per_class((probs[:, c] >= t)[:, None], truth[:, c][:, None])[0] for t in grid]
        thresholds.append(float(grid[int(np.argmax(scores))]))
    return thresholds


def multilabel_metrics(
    logits: np.ndarray, targets: np.ndarray, thresholds: list[float] | None = None
) -> dict[str, Any]:
    probs = sigmoid(logits)
    limits = np.asarray(thresholds if thresholds is not None else [0.5] * probs.shape[1])
    pred = probs >= limits
    truth = targets > 0.5
    f1 = _f1_per_class(pred, truth)
    present = truth.any(0)
    eps = 1e-7
    bce = -(targets * np.log(probs + eps) + (1 - targets) * np.log(1 - probs + eps)).mean()
    aps = []
    for c in np.flatnonzero(present):
        order = np.argsort(-probs[:, c], kind="stable")
        hits = truth[order, c]
        precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
        aps.append(float((precision * hits).sum() / hits.sum()))
    return {
        "acc": float((pred == truth).all(1).mean()) if len(truth) else 0.0,
        "label_acc": float((pred == truth).mean()) if len(truth) else 0.0,
        "f1_macro": float(f1[present].mean()) if present.any() else 0.0,
        "map": float(np.mean(aps)) if aps else 0.0,
        "loss": float(bce),
    }
