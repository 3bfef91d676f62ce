"""DOTA mAP: our rotated-box AP against the DOTA devkit's `voc_eval` (dota_evaluation_task1.py)
re-implemented from its source on a small fixed case of 8-point polygons, and against a
hand-computed precision envelope."""

from __future__ import annotations

import numpy as np
import pytest

from app.tasks.mapping import quad_to_obb
from workers.ml.tasks.oriented_detection.metrics import OrientedMAP, all_point_ap


def rect(cx: float, cy: float, w: float, h: float, degrees: float) -> list[float]:
    """8 numbers: the corners of a rotated rectangle, as a DOTA label line holds them."""
    a = np.radians(degrees)
    out = []
    for dx, dy in ((-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)):
        out += [cx + dx * np.cos(a) - dy * np.sin(a), cy + dx * np.sin(a) + dy * np.cos(a)]
    return out


# image -> [(polygon, class, difficult)]
TRUTH = {
    "P1": [
        (rect(30, 30, 40, 12, 30), "plane", 0),
        (rect(80, 40, 30, 10, -60), "plane", 0),
        (rect(50, 90, 20, 8, 10), "ship", 1),  # difficult
    ],
    "P2": [(rect(40, 40, 36, 14, 80), "ship", 0), (rect(90, 90, 16, 6, 0), "ship", 0)],
    "P3": [(rect(60, 60, 50, 20, -20), "plane", 0)],
}
# (image, class, score, polygon)
DETECTIONS = [
    ("P1", "plane", 0.95, rect(31, 30, 40, 12, 32)),  # TP
    ("P1", "plane", 0.90, rect(30, 31, 38, 12, 28)),  # duplicate: FP
    ("P1", "plane", 0.40, rect(80, 40, 30, 10, -30)),  # 30° off: IoU below 0.5 → FP
    ("P1", "ship", 0.85, rect(50, 90, 20, 8, 12)),  # on the difficult ship: ignored
    ("P2", "ship", 0.80, rect(41, 40, 36, 14, 82)),  # TP
    ("P2", "ship", 0.30, rect(89, 91, 16, 6, 3)),  # TP, lower IoU
    ("P2", "plane", 0.70, rect(40, 40, 36, 14, 80)),  # no plane in P2: FP
    ("P3", "plane", 0.60, rect(60, 61, 48, 20, -18)),  # TP
    ("P3", "ship", 0.20, rect(10, 10, 8, 4, 0)),  # FP
    ("P3", "plane", 0.50, rect(62, 60, 50, 18, -24)),  # duplicate: FP
]


def devkit_voc_ap(rec: np.ndarray, prec: np.ndarray) -> float:
    """dota_evaluation_task1.voc_ap(use_07_metric=False), as written there."""
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    for i in range(mpre.size - 1, 0, -1):
        mpre[i - 1] = np.maximum(mpre[i - 1], mpre[i])
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def devkit_voc_eval(classname: str, ovthresh: float) -> float:
    """dota_evaluation_task1.voc_eval, with the polygon IoU (the devkit's polyiou) by shapely."""
    from shapely.geometry import Polygon

    class_recs = {}
    npos = 0
    for name, objects in TRUTH.items():
        r = [o for o in objects if o[1] == classname]
        difficult = np.array([o[2] for o in r]).astype(bool)
        npos = npos + int(sum(~difficult))
        class_recs[name] = {
            "bbox": [o[0] for o in r],
            "difficult": difficult,
            "det": [False] * len(r),
        }
    dets = [d for d in DETECTIONS if d[1] == classname]
    confidence = np.array([d[2] for d in dets])
    order = np.argsort(-confidence)
    tp = np.zeros(len(dets))
    fp = np.zeros(len(dets))
    for d, k in enumerate(order):
        image, _, _, bb = dets[k]
        r = class_recs[image]
        ovmax = -np.inf
        if r["bbox"]:
            p = Polygon(np.reshape(bb, (4, 2)))
            overlaps = []
            for gt in r["bbox"]:
                q = Polygon(np.reshape(gt, (4, 2)))
                inter = p.intersection(q).area
                overlaps.append(inter / (p.area + q.area - inter))
            ovmax = float(np.max(overlaps))
            jmax = int(np.argmax(overlaps))
        if ovmax > ovthresh:
            if not r["difficult"][jmax]:
                if not r["det"][jmax]:
                    tp[d] = 1.0
                    r["det"][jmax] = True
                else:
                    fp[d] = 1.0
        else:
            fp[d] = 1.0
    fp = np.cumsum(fp)
    tp = np.cumsum(tp)
    rec = tp / float(npos)
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    return devkit_voc_ap(rec, prec)


def ours() -> dict:
    classes = ["plane", "ship"]
    metric = OrientedMAP(len(classes))
    for name, objects in TRUTH.items():
        mine = [d for d in DETECTIONS if d[0] == name]

        def obb(points: list[float]) -> list[float]:
            box = quad_to_obb(np.reshape(points, (4, 2)).tolist())
            assert box is not None
            return [box[k] for k in ("cx", "cy", "w", "h", "angle")]

        metric.update(
            np.array([obb(d[3]) for d in mine]).reshape(-1, 5),
            [d[2] for d in mine],
            [classes.index(d[1]) for d in mine],
            np.array([obb(o[0]) for o in objects]).reshape(-1, 5),
            [classes.index(o[1]) for o in objects],
            [bool(o[2]) for o in objects],
        )
    return metric.compute(classes)


def test_ap_agrees_with_the_dota_devkit_on_a_fixed_case() -> None:
    result = ours()
    per = {row["class"]: row for row in result["per_class"]}
    for name in ("plane", "ship"):
        assert per[name]["ap50"] == pytest.approx(devkit_voc_eval(name, 0.5), abs=1e-9)
    expected = np.mean([devkit_voc_eval(name, 0.5) for name in ("plane", "ship")])
    assert result["map50"] == pytest.approx(expected, abs=1e-9)
    thresholds = [0.5 + 0.05 * k for k in range(10)]
    strict = np.mean([[devkit_voc_eval(n, t) for n in ("plane", "ship")] for t in thresholds])
    assert result["map"] == pytest.approx(strict, abs=1e-9)
    # The case is not trivial: duplicates, a 30°-off box and a wrong image cost AP.
    assert 0.3 < result["map50"] < 0.95 and result["map"] < result["map50"]


def test_all_point_ap_by_hand() -> None:
    # Two truths; ranked TP, FP, TP: precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1.
    # The envelope is 1 up to recall 1/2, then 2/3: AP = 0.5 + 0.5 * 2/3.
    ap = all_point_ap(np.array([0.5, 0.5, 1.0]), np.array([1.0, 0.5, 2 / 3]))
    assert ap == pytest.approx(0.5 + 1 / 3)


def test_difficult_only_classes_and_empty_images_score_nothing() -> None:
    metric = OrientedMAP(2)
    metric.update(np.zeros((0, 5)), [], [], np.array([[10, 10, 8, 4, 0]]), [1], [True])
    metric.update(np.array([[10, 10, 8, 4, 0]]), [0.9], [0], np.zeros((0, 5)), [], [])
    result = metric.compute(["a", "b"])
    assert result["map50"] is None and result["per_class"] == []
