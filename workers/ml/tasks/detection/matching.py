"""Per-image matching of predicted objects to ground truth, for any object task.

Numpy only, and independent of the overlap measure: callers pass the IoU matrix (boxes here;
masks or rotated boxes in the instance and oriented tasks), so TP/FP/FN, the confusion pairs
and the export parity all follow one rule:

1. predictions by descending score each take the unmatched ground truth *of their class*
   with the highest IoU ≥ threshold → TP;
2. a prediction overlapping an *ignored* truth of its class (COCO iscrowd, VOC difficult) by
   ≥ threshold is dropped: neither TP nor FP, as COCO and VOC evaluate;
3. the rest are paired class-agnostically by the same greedy rule → class confusions
   (one FP and one FN each: the object was found but named wrongly);
4. unmatched predictions are FP (background column), unmatched truth FN (background row).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of xyxy boxes a [N, 4] and b [M, 4]; 0 where either box is empty."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


@dataclass
class Matching:
    """Outcome of one image: index pairs into the prediction and truth lists."""

    tp: list[tuple[int, int, float]] = field(default_factory=list)  # (pred, truth, iou)
    confused: list[tuple[int, int, float]] = field(default_factory=list)  # other class
    fp: list[int] = field(default_factory=list)
    fn: list[int] = field(default_factory=list)
    ignored: list[int] = field(default_factory=list)  # predictions on ignored truth

    @property
    def errors(self) -> int:
        return len(self.fp) + len(self.fn) + 2 * len(self.confused)


def greedy_match(
    iou: np.ndarray,
    pred_labels: np.ndarray,
    pred_scores: np.ndarray,
    truth_labels: np.ndarray,
    truth_ignore: np.ndarray | None = None,
    threshold: float = 0.5,
) -> Matching:
    """Match predictions [P] to truth [T] given their IoU matrix [P, T] (see module doc)."""
    pred_labels = np.asarray(pred_labels).reshape(-1)
    truth_labels = np.asarray(truth_labels).reshape(-1)
    n_pred, n_truth = len(pred_labels), len(truth_labels)
    ignore = np.zeros(n_truth, bool) if truth_ignore is None else np.asarray(truth_ignore, bool)
    iou = np.asarray(iou, np.float64).reshape(n_pred, n_truth)
    order = np.argsort(-np.asarray(pred_scores, np.float64).reshape(-1), kind="stable")
    taken = np.zeros(n_truth, bool)
    used = np.zeros(n_pred, bool)
    result = Matching()
    for p in order:  # 1. same class, not ignored
        candidates = np.where(~taken & ~ignore & (truth_labels == pred_labels[p]), iou[p], -1.0)
        t = int(np.argmax(candidates)) if n_truth else -1
        if t >= 0 and candidates[t] >= threshold:
            taken[t] = used[p] = True
            result.tp.append((int(p), t, float(iou[p, t])))
    for p in order:  # 2. on ignored truth of its class: dropped
        same = ignore & (truth_labels == pred_labels[p])
        if not used[p] and same.any() and iou[p][same].max() >= threshold:
            used[p] = True
            result.ignored.append(int(p))
    for p in order:  # 3. class confusions
        if used[p]:
            continue
        candidates = np.where(~taken & ~ignore, iou[p], -1.0)
        t = int(np.argmax(candidates)) if n_truth else -1
        if t >= 0 and candidates[t] >= threshold:
            taken[t] = used[p] = True
            result.confused.append((int(p), t, float(iou[p, t])))
    result.fp = [int(p) for p in order if not used[p]]
    result.fn = [int(t) for t in range(n_truth) if not taken[t] and not ignore[t]]
    return result


def outcomes(result: Matching) -> tuple[dict[int, str], dict[int, str]]:
    """Each prediction's and each truth's verdict: tp, fp, fn or confused (a prediction on
    ignored truth has none: callers show it as "ignored")."""
    pred: dict[int, str] = {p: "tp" for p, _, _ in result.tp}
    pred.update({p: "fp" for p in result.fp})
    pred.update({p: "confused" for p, _, _ in result.confused})
    truth: dict[int, str] = {t: "tp" for _, t, _ in result.tp}
    truth.update({t: "fn" for t in result.fn})
    truth.update({t: "confused" for _, t, _ in result.confused})
    return pred, truth


def match_rows(
    result: Matching, pred_labels: np.ndarray, pred_scores: np.ndarray, truth_labels: np.ndarray
) -> tuple[list[dict[str, object]], dict[str, int]]:
    """The image's confusion rows ((true, predicted) 0-based classes, None = background, with
    IoU and score) and its TP/FP/FN counts (a confusion counts as one FP and one FN)."""
    rows: list[dict[str, object]] = [
        {
            "true_class": int(truth_labels[t]) - 1,
            "predicted_class": int(pred_labels[p]) - 1,
            "iou": iou,
            "score": float(pred_scores[p]),
        }
        for p, t, iou in [*result.tp, *result.confused]
    ]
    rows += [
        {
            "true_class": None,
            "predicted_class": int(pred_labels[p]) - 1,
            "iou": None,
            "score": float(pred_scores[p]),
        }
        for p in result.fp
    ]
    rows += [
        {
            "true_class": int(truth_labels[t]) - 1,
            "predicted_class": None,
            "iou": None,
            "score": None,
        }
        for t in result.fn
    ]
    counts = {
        "tp": len(result.tp),
        "fp": len(result.fp) + len(result.confused),
        "fn": len(result.fn) + len(result.confused),
    }
    return rows, counts
