"""Detection scoring: the greedy matcher's rules on hand-made cases, and mAP from torchmetrics
(float64 IoU thresholds) against pycocotools' COCOeval called directly on the same boxes."""

from __future__ import annotations

import numpy as np
import pytest

from workers.ml.tasks.detection import metrics as det_metrics
from workers.ml.tasks.detection.matching import box_iou, greedy_match


def test_box_iou_by_hand() -> None:
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[5, 5, 15, 15], [0, 0, 10, 10], [20, 20, 30, 30], [3, 3, 3, 9]])
    assert box_iou(a, b).round(6).tolist() == [[round(25 / 175, 6), 1.0, 0.0, 0.0]]
    assert box_iou(np.zeros((0, 4)), b).shape == (0, 4)


def test_greedy_match_tp_fp_fn_confusion_and_ignored() -> None:
    truth = np.array([[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10], [60, 0, 70, 10]])
    truth_labels = np.array([1, 1, 2, 1])
    ignored = np.array([False, False, False, True])
    preds = np.array(
        [
            [0, 0, 10, 10],  # TP on truth 0
            [1, 0, 11, 10],  # duplicate of truth 0, lower score: FP
            [20, 0, 30, 10],  # class 2 on a class-1 box: confusion
            [60, 0, 70, 10],  # on the ignored box: dropped
            [90, 0, 99, 10],  # nothing there: FP
        ]
    )
    labels = np.array([1, 1, 2, 1, 1])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    m = greedy_match(box_iou(preds, truth), labels, scores, truth_labels, ignored)
    assert [(p, t) for p, t, _ in m.tp] == [(0, 0)]
    assert [(p, t) for p, t, _ in m.confused] == [(2, 1)]
    assert m.ignored == [3]
    assert sorted(m.fp) == [1, 4]
    assert m.fn == [2]  # the class-2 box nobody found; the ignored box is not missed
    assert m.errors == 2 + 1 + 2


def test_empty_images_have_no_errors() -> None:
    m = greedy_match(np.zeros((0, 0)), np.zeros(0), np.zeros(0), np.zeros(0))
    assert m.errors == 0 and not m.tp


def _coco_reference(preds: list, truths: list) -> dict[str, float]:  # type: ignore[type-arg]
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = COCO()
    images, annotations, results = [], [], []
    for image_id, (truth, pred) in enumerate(zip(truths, preds, strict=True), 1):
        images.append({"id": image_id, "width": 100, "height": 100})
        for box, label, crowd in zip(*truth, strict=True):
            x0, y0, x1, y1 = (float(v) for v in box)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(label),
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": (x1 - x0) * (y1 - y0),
                    "iscrowd": int(crowd),
                }
            )
        for box, score, label in zip(*pred, strict=True):
            x0, y0, x1, y1 = (float(v) for v in box)
            results.append(
                {
                    "image_id": image_id,
                    "category_id": int(label),
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "score": float(score),
                }
            )
    gt.dataset = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": c} for c in (1, 2, 3)],
    }
    gt.createIndex()
    evaluator = COCOeval(gt, gt.loadRes(results), "bbox")
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    s = evaluator.stats
    return {
        "map": s[0],
        "map50": s[1],
        "map75": s[2],
        "map_small": s[3],
        "map_medium": s[4],
        "map_large": s[5],
        "mar100": s[8],
    }


def test_map_agrees_with_cocoeval_on_fixed_predictions() -> None:
    rng = np.random.default_rng(3)
    preds, truths = [], []
    for _ in range(12):
        n = int(rng.integers(1, 6))
        xy = rng.uniform(0, 70, (n, 2))
        wh = rng.uniform(4, 30, (n, 2))
        boxes = np.concatenate([xy, xy + wh], 1)
        labels = rng.integers(1, 4, n)
        crowd = (rng.random(n) < 0.1).astype(int)
        truths.append((boxes, labels, crowd))
        jitter = boxes + rng.normal(0, 2.5, boxes.shape)
        extra = rng.uniform(0, 80, (2, 2))
        p_boxes = np.concatenate([jitter, np.concatenate([extra, extra + 12], 1)])
        p_labels = np.concatenate(
            [np.where(rng.random(n) < 0.8, labels, rng.integers(1, 4, n)), rng.integers(1, 4, 2)]
        )
        p_scores = rng.uniform(0.05, 1.0, n + 2)
        preds.append((p_boxes, p_scores, p_labels))
    metric = det_metrics.new_metric()
    for (boxes, scores, labels), truth in zip(preds, truths, strict=True):
        metric.update(
            [det_metrics.as_preds(boxes, scores, labels)], [det_metrics.as_target(*truth)]
        )
    ours = det_metrics.summarise(metric, ["a", "b", "c"])
    reference = _coco_reference(preds, truths)
    for key, value in reference.items():
        if value < 0:
            assert ours[key] is None
        else:
            assert ours[key] == pytest.approx(value, abs=1e-4), key
    assert {row["class"] for row in ours["per_class"]} <= {"a", "b", "c"}
    assert len(ours["pr_curves"]["recall"]) == 101
