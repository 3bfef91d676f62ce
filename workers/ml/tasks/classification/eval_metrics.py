"""Classification metrics (multi-class and multi-label) computed with torchmetrics.

Everything returned is plain JSON (floats, ints, lists, None) so it can go straight into
Evaluation.aggregate. Conventions, chosen to match scikit-learn's defaults so that a reader
can reproduce every number:

- macro averages run over the classes that occur in the ground truth or the predictions
  (scikit-learn's `labels=None`); a class that never occurs carries no information;
- a ratio with a zero denominator counts as 0 (scikit-learn's `zero_division=0`);
- ROC-AUC and AP are per class, one-vs-rest; a class whose targets are all positive or all
  negative has no defined ROC-AUC (None) and is left out of the macro mean; AP needs at
  least one positive;
- multi-label decisions use one threshold per class, reported in the result;
- accuracy and subset accuracy are also computed as exact count ratios in float64 (torchmetrics
  returns float32), so they equal bit for bit what training recorded for the same checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torchmetrics.functional.classification import (
    binary_auroc,
    binary_average_precision,
    multiclass_accuracy,
    multiclass_confusion_matrix,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
    multilabel_exact_match,
    multilabel_f1_score,
    multilabel_hamming_distance,
    multilabel_precision,
    multilabel_recall,
)

TOP_K = (3, 5)


def _floats(values: torch.Tensor) -> list[float]:
    return [float(v) for v in values.tolist()]


def _mean_or_none(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(sum(present) / len(present)) if present else None


def _per_class_auc(scores: torch.Tensor, onehot: torch.Tensor) -> list[float | None]:
    out: list[float | None] = []
    for c in range(scores.shape[1]):
        positives = int(onehot[:, c].sum())
        if positives == 0 or positives == onehot.shape[0]:
            out.append(None)
        else:
            out.append(float(binary_auroc(scores[:, c], onehot[:, c].long())))
    return out


def _per_class_ap(scores: torch.Tensor, onehot: torch.Tensor) -> list[float | None]:
    out: list[float | None] = []
    for c in range(scores.shape[1]):
        if int(onehot[:, c].sum()) == 0:
            out.append(None)
        else:
            out.append(float(binary_average_precision(scores[:, c], onehot[:, c].long())))
    return out


def multiclass_metrics(
    probs: torch.Tensor, targets: torch.Tensor, classes: Sequence[str]
) -> dict[str, Any]:
    """probs: [N, C] class probabilities (softmax); targets: [N] class indices."""
    probs = probs.detach().double().cpu()
    targets = targets.detach().long().cpu()
    n, num_classes = probs.shape
    if n == 0:
        raise ValueError("no samples to evaluate")
    preds = probs.argmax(dim=1)
    kw: dict[str, Any] = {"num_classes": num_classes, "validate_args": False}
    present = torch.zeros(num_classes, dtype=torch.bool)
    present[targets] = True
    present[preds] = True

    def averaged(fn: Any) -> tuple[list[float], float, float]:
        per_class = fn(preds, targets, average="none", **kw)
        macro = float(per_class[present].mean())
        micro = float(fn(preds, targets, average="micro", **kw))
        return _floats(per_class), macro, micro

    precision, precision_macro, precision_micro = averaged(multiclass_precision)
    recall, recall_macro, recall_micro = averaged(multiclass_recall)
    f1, f1_macro, f1_micro = averaged(multiclass_f1_score)
    support = torch.bincount(targets, minlength=num_classes)
    onehot = torch.nn.functional.one_hot(targets, num_classes)
    accuracy = int((preds == targets).sum()) / n
    assert abs(accuracy - float(multiclass_accuracy(preds, targets, average="micro", **kw))) < 1e-6
    auc = _per_class_auc(probs, onehot)
    result: dict[str, Any] = {
        "task": "multiclass",
        "samples": n,
        "classes": list(classes),
        "accuracy": accuracy,
        "balanced_accuracy": float(torch.tensor(recall)[support > 0].mean()),
        "precision_macro": precision_macro,
        "recall_macro": recall_macro,
        "f1_macro": f1_macro,
        "precision_micro": precision_micro,
        "recall_micro": recall_micro,
        "f1_micro": f1_micro,
        "roc_auc_macro": _mean_or_none(auc),
        "confusion_matrix": multiclass_confusion_matrix(preds, targets, **kw).tolist(),
        "per_class": [
            {
                "index": c,
                "class": classes[c],
                "precision": precision[c],
                "recall": recall[c],
                "f1": f1[c],
                "roc_auc": auc[c],
                "support": int(support[c]),
            }
            for c in range(num_classes)
        ],
    }
    for k in TOP_K:
        if k < num_classes:
            result[f"top{k}_accuracy"] = float(
                multiclass_accuracy(probs, targets, average="micro", top_k=k, **kw)
            )
    return result


def multilabel_metrics(
    probs: torch.Tensor,
    targets: torch.Tensor,
    classes: Sequence[str],
    thresholds: Sequence[float] | None = None,
) -> dict[str, Any]:
    """probs: [N, C] per-class probabilities (sigmoid); targets: [N, C] 0/1.

    A class is predicted when its probability is >= its threshold (0.5 when none given).
    """
    probs = probs.detach().double().cpu()
    targets = targets.detach().long().cpu()
    n, num_labels = probs.shape
    if n == 0:
        raise ValueError("no samples to evaluate")
    limits = torch.tensor(
        list(thresholds) if thresholds is not None else [0.5] * num_labels, dtype=torch.float64
    )
    preds = (probs >= limits).long()  # integer tensors are taken as decisions, not scores
    kw: dict[str, Any] = {"num_labels": num_labels, "validate_args": False}
    present = (targets.sum(0) > 0) | (preds.sum(0) > 0)

    def averaged(fn: Any) -> tuple[list[float], float, float]:
        per_class = fn(preds, targets, average="none", **kw)
        macro = float(per_class[present].mean()) if bool(present.any()) else 0.0
        micro = float(fn(preds, targets, average="micro", **kw))
        return _floats(per_class), macro, micro

    precision, precision_macro, precision_micro = averaged(multilabel_precision)
    recall, recall_macro, recall_micro = averaged(multilabel_recall)
    f1, f1_macro, f1_micro = averaged(multilabel_f1_score)
    ap = _per_class_ap(probs, targets)
    auc = _per_class_auc(probs, targets)
    support = targets.sum(0)
    exact = int((preds == targets).all(dim=1).sum()) / n
    assert abs(exact - float(multilabel_exact_match(preds, targets, **kw))) < 1e-6
    return {
        "task": "multilabel",
        "samples": n,
        "classes": list(classes),
        "thresholds": _floats(limits),
        "subset_accuracy": exact,
        "accuracy": exact,
        "hamming_loss": float(multilabel_hamming_distance(preds, targets, average="micro", **kw)),
        "map": _mean_or_none(ap),
        "precision_macro": precision_macro,
        "recall_macro": recall_macro,
        "f1_macro": f1_macro,
        "precision_micro": precision_micro,
        "recall_micro": recall_micro,
        "f1_micro": f1_micro,
        "roc_auc_macro": _mean_or_none(auc),
        "per_class": [
            {
                "index": c,
                "class": classes[c],
                "threshold": float(limits[c]),
                "precision": precision[c],
                "recall": recall[c],
                "f1": f1[c],
                "ap": ap[c],
                "roc_auc": auc[c],
                "support": int(support[c]),
            }
            for c in range(num_labels)
        ],
    }
