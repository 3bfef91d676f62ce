"""DOTA-style mAP for rotated boxes (numpy): the DOTA devkit's `voc_eval` rule, all-point AP.

Per class, detections of every image are ranked by score; each takes the truth of its class in
its image with the highest rotated IoU: above the threshold (strictly, as the devkit) and not
yet taken → TP; taken → FP (a duplicate); a *difficult* truth → neither (ignored); below the
threshold → FP. AP is the area under the precision envelope at every recall point (VOC 2010+
"all-point", the devkit's `use_07_metric=False`). `map50` is the mean AP over classes with
truth at IoU 0.5; `map` averages that over IoU 0.50:0.05:0.95, as COCO does for boxes.
Classes without any (non-difficult) truth are left out of the mean, as the devkit does when it
is run per class on the classes present.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workers.ml.tasks.oriented_detection.geometry import rotated_iou

IOU_THRESHOLDS = [round(0.5 + 0.05 * k, 2) for k in range(10)]
CURVE_POINTS = 101


def all_point_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """The devkit's voc_ap(use_07_metric=False): area under the monotone precision envelope."""
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    for i in range(len(mpre) - 1, 0, -1):
        mpre[i - 1] = max(mpre[i - 1], mpre[i])
    steps = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


@dataclass
class _Image:
    pred_obb: np.ndarray
    pred_scores: np.ndarray
    pred_labels: np.ndarray
    truth_obb: np.ndarray
    truth_labels: np.ndarray
    difficult: np.ndarray
    iou: np.ndarray


@dataclass
class OrientedMAP:
    """Accumulates images (predictions and truth in the same pixels; labels 0-based) and
    computes DOTA mAP; the IoU matrix of each image is computed once for every threshold."""

    classes: int
    images: list[_Image] = field(default_factory=list)

    def update(
        self,
        pred_obb: np.ndarray,
        pred_scores: np.ndarray,
        pred_labels: np.ndarray,
        truth_obb: np.ndarray,
        truth_labels: np.ndarray,
        difficult: np.ndarray | None = None,
    ) -> None:
        pred_obb = np.asarray(pred_obb, np.float64).reshape(-1, 5)
        truth_obb = np.asarray(truth_obb, np.float64).reshape(-1, 5)
        truth_labels = np.asarray(truth_labels, np.int64).reshape(-1)
        self.images.append(
            _Image(
                pred_obb,
                np.asarray(pred_scores, np.float64).reshape(-1),
                np.asarray(pred_labels, np.int64).reshape(-1),
                truth_obb,
                truth_labels,
                np.zeros(len(truth_labels), bool)
                if difficult is None
                else np.asarray(difficult, bool).reshape(-1),
                rotated_iou(pred_obb, truth_obb),
            )
        )

    def class_curve(self, label: int, threshold: float) -> tuple[np.ndarray, np.ndarray, int]:
        """(recall, precision) over the ranked detections of one class, and its truth count."""
        positives = sum(
            int(np.sum((im.truth_labels == label) & ~im.difficult)) for im in self.images
        )
        ranked: list[tuple[float, int, int]] = []  # (score, image, prediction)
        for i, im in enumerate(self.images):
            for p in np.flatnonzero(im.pred_labels == label):
                ranked.append((float(im.pred_scores[p]), i, int(p)))
        ranked.sort(key=lambda item: -item[0])  # stable: ties keep image order, as the devkit
        taken = [np.zeros(len(im.truth_labels), bool) for im in self.images]
        tp = np.zeros(len(ranked))
        fp = np.zeros(len(ranked))
        for d, (_, i, p) in enumerate(ranked):
            im = self.images[i]
            mine = np.flatnonzero(im.truth_labels == label)
            if not len(mine):
                fp[d] = 1
                continue
            overlaps = im.iou[p, mine]
            best = int(np.argmax(overlaps))
            if overlaps[best] > threshold:
                t = mine[best]
                if im.difficult[t]:
                    continue
                if not taken[i][t]:
                    taken[i][t] = True
                    tp[d] = 1
                else:
                    fp[d] = 1
            else:
                fp[d] = 1
        tp, fp = np.cumsum(tp), np.cumsum(fp)
        recall = tp / max(positives, 1)
        precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        return recall, precision, positives

    def class_ap(self, label: int, threshold: float) -> float | None:
        recall, precision, positives = self.class_curve(label, threshold)
        return all_point_ap(recall, precision) if positives else None

    def compute(self, names: list[str] | None = None) -> dict[str, Any]:
        """{"map50", "map75", "map", "per_class": [{"index", "class", "ap50", "ap"}],
        "pr_curves"}: None where no class has truth."""
        names = names or [str(k) for k in range(self.classes)]
        table: dict[float, dict[int, float]] = {t: {} for t in IOU_THRESHOLDS}
        for threshold in IOU_THRESHOLDS:
            for label in range(self.classes):
                ap = self.class_ap(label, threshold)
                if ap is not None:
                    table[threshold][label] = ap

        def mean(values: list[float]) -> float | None:
            return float(np.mean(values)) if values else None

        present = sorted(table[0.5])
        per_class = []
        curves = []
        grid = np.linspace(0, 1, CURVE_POINTS)
        for label in present:
            ap_all = mean([table[t][label] for t in IOU_THRESHOLDS])
            per_class.append(
                {"index": label, "class": names[label], "ap50": table[0.5][label], "ap": ap_all}
            )
            recall, precision, _ = self.class_curve(label, 0.5)
            envelope = np.maximum.accumulate(precision[::-1])[::-1] if len(precision) else precision
            sampled = [
                float(envelope[recall >= r].max()) if np.any(recall >= r) else 0.0 for r in grid
            ]
            curves.append(
                {
                    "index": label,
                    "class": names[label],
                    "precision": [round(v, 4) for v in sampled],
                }
            )
        by_threshold = [mean(list(table[t].values())) for t in IOU_THRESHOLDS]
        valid = [v for v in by_threshold if v is not None]
        return {
            "map50": by_threshold[0],
            "map75": by_threshold[IOU_THRESHOLDS.index(0.75)],
            "map": float(np.mean(valid)) if valid else None,
            "per_class": per_class,
            "pr_curves": {
                "recall": [round(float(r), 2) for r in grid],
                "classes": curves,
            },
        }
