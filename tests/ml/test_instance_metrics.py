"""Instance scoring: mask IoU by hand (crowd rule included), box and mask mAP from torchmetrics
against pycocotools' COCOeval called directly on the same masks, and the greedy matcher on a
mask-IoU matrix (touching instances of one class are told apart)."""

from __future__ import annotations

import numpy as np
import pytest

from workers.ml.tasks.detection.matching import greedy_match, match_rows
from workers.ml.tasks.instance_segmentation import metrics as inst_metrics

SIDE = 40


def _disc(cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[:SIDE, :SIDE]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r**2


def test_mask_iou_by_hand_and_crowd_rule() -> None:
    a = np.zeros((1, 10, 10), bool)
    a[0, :, :5] = True  # 50 px
    b = np.zeros((2, 10, 10), bool)
    b[0, :, 2:7] = True  # 50 px, 30 shared
    b[1] = True  # a crowd region covering everything
    iou = inst_metrics.mask_iou(a, b, np.array([False, True]))
    assert iou.round(6).tolist() == [[round(30 / 70, 6), 1.0]]
    assert inst_metrics.mask_iou(np.zeros((0, 10, 10)), b).shape == (0, 2)


def test_touching_instances_of_one_class_are_matched_separately() -> None:
    left, right = np.zeros((SIDE, SIDE), bool), np.zeros((SIDE, SIDE), bool)
    left[10:30, 5:20], right[10:30, 20:35] = True, True
    truth = np.stack([left, right])
    merged = left | right  # one blob over both: IoU 0.5 with each, matches at most one
    preds = np.stack([merged, right])
    iou = inst_metrics.mask_iou(preds, truth)
    m = greedy_match(iou, np.array([1, 1]), np.array([0.9, 0.8]), np.array([1, 1]))
    assert [(p, t) for p, t, _ in m.tp] == [(0, 0), (1, 1)]
    rows, counts = match_rows(m, np.array([1, 1]), np.array([0.9, 0.8]), np.array([1, 1]))
    assert counts == {"tp": 2, "fp": 0, "fn": 0} and len(rows) == 2
    m = greedy_match(iou[:1], np.array([1]), np.array([0.9]), np.array([1, 1]))
    assert len(m.tp) == 1 and m.fn == [1]


def _coco_reference(preds: list, truths: list) -> dict[str, float]:  # type: ignore[type-arg]
    from pycocotools import mask as coco_mask
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def rle(mask: np.ndarray) -> dict:  # type: ignore[type-arg]
        encoded = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
        encoded["counts"] = encoded["counts"].decode("ascii")
        return encoded

    gt = COCO()
    images, annotations, results = [], [], []
    for image_id, ((masks, labels, crowd), (p_masks, scores, p_labels)) in enumerate(
        zip(truths, preds, strict=True), 1
    ):
        images.append({"id": image_id, "width": SIDE, "height": SIDE})
        for mask, label, is_crowd in zip(masks, labels, crowd, strict=True):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(label),
                    "segmentation": rle(mask),
                    "area": float(mask.sum()),
                    "bbox": list(coco_mask.toBbox(rle(mask))),
                    "iscrowd": int(is_crowd),
                }
            )
        for mask, score, label in zip(p_masks, scores, p_labels, strict=True):
            results.append(
                {
                    "image_id": image_id,
                    "category_id": int(label),
                    "segmentation": rle(mask),
                    "score": float(score),
                }
            )
    gt.dataset = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": c} for c in (1, 2, 3)],
    }
    gt.createIndex()
    evaluator = COCOeval(gt, gt.loadRes(results), "segm")
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    s = evaluator.stats
    return {"map": s[0], "map50": s[1], "map75": s[2], "mar100": s[8]}


def test_mask_map_agrees_with_cocoeval_on_fixed_predictions() -> None:
    rng = np.random.default_rng(5)
    preds, truths = [], []
    for _ in range(10):
        n = int(rng.integers(1, 5))
        centres = rng.uniform(8, 32, (n, 2))
        radii = rng.uniform(3, 9, n)
        masks = np.stack([_disc(x, y, r) for (x, y), r in zip(centres, radii, strict=True)])
        labels = rng.integers(1, 4, n)
        crowd = (rng.random(n) < 0.1).astype(int)
        truths.append((masks, labels, crowd))
        moved = centres + rng.normal(0, 1.5, centres.shape)
        p_masks = [
            _disc(x, y, r * rng.uniform(0.8, 1.2)) for (x, y), r in zip(moved, radii, strict=True)
        ]
        p_masks.append(_disc(*rng.uniform(5, 35, 2), 4))  # a false instance
        p_labels = np.concatenate(
            [np.where(rng.random(n) < 0.8, labels, rng.integers(1, 4, n)), rng.integers(1, 4, 1)]
        )
        preds.append((np.stack(p_masks), rng.uniform(0.05, 1.0, n + 1), p_labels))
    metric = inst_metrics.new_metric()
    for (masks, labels, crowd), (p_masks, scores, p_labels) in zip(truths, preds, strict=True):
        metric.update(
            [inst_metrics.as_preds(inst_metrics.extents(p_masks), scores, p_labels, p_masks)],
            [inst_metrics.as_target(masks, labels, crowd)],
        )
    ours = inst_metrics.summarise(metric, ["a", "b", "c"])
    reference = _coco_reference(preds, truths)
    assert 0.05 < reference["map50"] < 1.0  # a case where the numbers mean something
    for key in ("map", "map50", "map75", "mar100"):
        assert ours[f"{key}_mask"] == pytest.approx(reference[key], abs=1e-4), key
    assert {row["class"] for row in ours["per_class"]} == {"a", "b", "c"}
    assert all(row["ap"] is not None and row["box_ap"] is not None for row in ours["per_class"])
    assert isinstance(ours["map_box"], float) and isinstance(ours["map50_box"], float)
