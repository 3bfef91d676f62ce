"""Anomaly metrics in numpy: image ROC/AUROC, precision/recall/F1 at a threshold, threshold
calibration (maximum F1, or a false-alarm rate on normal images), pixel AUROC and AUPRO.

Scores: higher = more anomalous; labels: 1 = anomalous. AUPRO follows Bergmann et al.
(MVTec AD): the mean per-region overlap of every ground-truth defect region as a function of
the false-positive rate on normal pixels, integrated up to FPR 0.3 and divided by 0.3.
"""

from __future__ import annotations

from typing import Any

import numpy as np

PRO_LIMIT = 0.3
PRO_STEPS = 200
MAX_PIXELS = 4_000_000  # pixel AUROC: an even sample beyond this many pixels


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) at every distinct score, from (0, 0) to (1, 1); ties move together."""
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order].astype(np.float64)
    distinct = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tps = np.cumsum(y)[distinct]
    fps = np.cumsum(1 - y)[distinct]
    positives, negatives = y.sum(), len(y) - y.sum()
    tpr = np.r_[0.0, tps / positives] if positives else np.zeros(len(tps) + 1)
    fpr = np.r_[0.0, fps / negatives] if negatives else np.zeros(len(fps) + 1)
    return fpr, tpr


def auroc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """Area under the ROC curve; None unless both classes are present."""
    labels = np.asarray(labels).astype(bool)
    if labels.all() or not labels.any():
        return None
    fpr, tpr = roc_curve(np.asarray(scores, np.float64), labels)
    return float(np.trapezoid(tpr, fpr))


def at_threshold(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, Any]:
    """Counts, precision, recall, F1, accuracy and false-alarm rate of `score >= threshold`."""
    predicted = np.asarray(scores) >= threshold
    truth = np.asarray(labels).astype(bool)
    tp = int((predicted & truth).sum())
    fp = int((predicted & ~truth).sum())
    fn = int((~predicted & truth).sum())
    tn = int((~predicted & ~truth).sum())
    precision = tp / (tp + fp) if tp + fp else (1.0 if not truth.any() else 0.0)
    recall = tp / (tp + fn) if tp + fn else None
    f1 = None
    if recall is not None:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "accuracy": (tp + tn) / len(truth) if len(truth) else None,
        "fpr": fp / (fp + tn) if fp + tn else None,
    }


def best_f1_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The threshold of maximum F1: one of the anomalous images' scores (ties: the highest)."""
    truth = np.asarray(labels).astype(bool)
    candidates = np.unique(np.asarray(scores)[truth])
    best, best_f1 = float(candidates[-1]), -1.0
    for t in candidates:
        f1 = at_threshold(scores, labels, float(t))["f1"] or 0.0
        if f1 >= best_f1:
            best, best_f1 = float(t), f1
    return best


def fpr_threshold(normal_scores: np.ndarray, target_fpr: float) -> float:
    """The lowest threshold that flags at most `target_fpr` of these normal images."""
    ordered = np.sort(np.asarray(normal_scores, np.float64))[::-1]
    allowed = int(np.floor(target_fpr * len(ordered)))
    if allowed >= len(ordered):
        return float(ordered[-1])
    return float(np.nextafter(ordered[allowed], np.inf))


def calibrate(scores: np.ndarray, labels: np.ndarray, target_fpr: float) -> dict[str, Any]:
    """The threshold rule of the task: max F1 when anomalies are present, else the false-alarm
    rate on normal images; {"threshold", "rule", "images"}."""
    truth = np.asarray(labels).astype(bool)
    if truth.any() and (~truth).any():
        return {
            "threshold": best_f1_threshold(scores, truth),
            "rule": "max_f1",
            "images": len(truth),
        }
    if (~truth).any():
        return {
            "threshold": fpr_threshold(np.asarray(scores)[~truth], target_fpr),
            "rule": f"false_alarm_rate_{target_fpr:g}",
            "images": len(truth),
        }
    return {"threshold": float(np.min(scores)), "rule": "min_anomalous_score", "images": len(truth)}


def pixel_auroc(maps: np.ndarray, masks: np.ndarray) -> float | None:
    """AUROC over pixels of the images that have ground-truth masks (normals: all zero)."""
    values, truth = maps.reshape(-1), masks.reshape(-1).astype(bool)
    if len(values) > MAX_PIXELS:
        keep = np.linspace(0, len(values) - 1, MAX_PIXELS).astype(np.int64)
        values, truth = values[keep], truth[keep]
    return auroc(values, truth)


def _regions(mask: np.ndarray) -> np.ndarray:
    """Connected components (4-neighbour) of a binary mask as a label image (0 = none)."""
    from scipy import ndimage

    labelled, _ = ndimage.label(mask)
    return np.asarray(labelled)


def aupro(maps: np.ndarray, masks: np.ndarray, limit: float = PRO_LIMIT) -> float | None:
    """Normalized area under the per-region-overlap curve up to FPR `limit`; None without
    defect regions or without normal pixels."""
    masks = masks.astype(bool)
    if not masks.any() or masks.all():
        return None
    regions: list[tuple[int, np.ndarray]] = []
    for index in range(len(masks)):
        labelled = _regions(masks[index])
        for value in range(1, int(labelled.max()) + 1):
            regions.append((index, labelled == value))
    normal_values = np.sort(maps[~masks])
    # Thresholds from the normal pixels' quantiles, so the FPR axis is sampled evenly.
    quantiles = 1 - np.linspace(0, limit, PRO_STEPS)
    thresholds = np.quantile(normal_values, np.clip(quantiles, 0, 1))
    fprs, pros = [], []
    for t in thresholds:
        fpr = 1 - np.searchsorted(normal_values, t, side="left") / len(normal_values)
        overlap = [float((maps[i][region] >= t).mean()) for i, region in regions]
        fprs.append(fpr)
        pros.append(float(np.mean(overlap)))
    fpr_arr, pro_arr = np.asarray(fprs), np.asarray(pros)
    order = np.argsort(fpr_arr, kind="stable")
    fpr_arr, pro_arr = fpr_arr[order], pro_arr[order]
    inside = fpr_arr <= limit
    if inside.sum() < 2:
        return None
    x, y = fpr_arr[inside], pro_arr[inside]
    if x[-1] < limit:  # close the curve at the limit with the last value
        x, y = np.r_[x, limit], np.r_[y, y[-1]]
    return float(np.trapezoid(y, x) / limit)


def thin_curve(fpr: np.ndarray, tpr: np.ndarray, points: int = 200) -> dict[str, list[float]]:
    """At most `points` points of a ROC curve (for the page), keeping both ends."""
    if len(fpr) > points:
        keep = np.unique(np.linspace(0, len(fpr) - 1, points).round().astype(int))
        fpr, tpr = fpr[keep], tpr[keep]
    return {"fpr": [round(float(v), 5) for v in fpr], "tpr": [round(float(v), 5) for v in tpr]}
