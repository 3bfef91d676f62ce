"""Rotated-box geometry in numpy: the le90 convention, corners, exact rotated IoU, rotated NMS.

Numpy (and shapely) only: the evaluation, the export parity and the numpy decoder of an
exported model all use these functions, so a box is normalised, compared and suppressed by
one rule everywhere.

Convention (le90, as mmrotate names it): a box is (cx, cy, w, h, θ) with w ≥ h (w is the long
edge) and θ ∈ [-90°, 90°) the angle of the long edge from the image x axis, measured towards
+y (clockwise on screen, since image y points down). Annotations store degrees; the network
works in radians.
"""

from __future__ import annotations

import math

import numpy as np

MIN_SIDE = 1.0  # px: rotated boxes with a side shorter than this are degenerate


def normalise_le90(obb: np.ndarray, degrees: bool = True) -> np.ndarray:
    """[N, 5] boxes with any angle and side order → le90: the long edge is w, θ in [-90, 90)
    (or [-π/2, π/2) in radians). A box and its normal form cover the same pixels."""
    box = np.array(obb, np.float64).reshape(-1, 5)
    half = 90.0 if degrees else math.pi / 2
    swap = box[:, 3] > box[:, 2]
    box[swap, 2], box[swap, 3] = box[swap, 3], box[swap, 2].copy()
    box[swap, 4] += half
    box[:, 4] = (box[:, 4] + half) % (2 * half) - half
    return box


def corners(obb: np.ndarray, degrees: bool = True) -> np.ndarray:
    """[N, 5] boxes → [N, 4, 2] corner points, in the order (-w/2,-h/2), (w/2,-h/2),
    (w/2,h/2), (-w/2,h/2) of the box frame: the same order app/overlays.py draws."""
    box = np.asarray(obb, np.float64).reshape(-1, 5)
    angle = np.radians(box[:, 4]) if degrees else box[:, 4]
    cos, sin = np.cos(angle), np.sin(angle)
    half_w, half_h = box[:, 2] / 2, box[:, 3] / 2
    dx = np.stack([-half_w, half_w, half_w, -half_w], 1)
    dy = np.stack([-half_h, -half_h, half_h, half_h], 1)
    x = box[:, None, 0] + dx * cos[:, None] - dy * sin[:, None]
    y = box[:, None, 1] + dx * sin[:, None] + dy * cos[:, None]
    return np.stack([x, y], -1)


def obb_from_corners(points: np.ndarray) -> np.ndarray:
    """[N, 4, 2] corners (in `geometry.corners` order, after any affine map) → le90 boxes
    (θ radians). The first edge keeps its direction and length; the second becomes the
    height that keeps the area, so a similarity map is exact and a resize to a square keeps
    the box's area and long-edge direction."""
    p = np.asarray(points, np.float64).reshape(-1, 4, 2)
    e1 = p[:, 1] - p[:, 0]
    e2 = p[:, 3] - p[:, 0]
    w = np.hypot(e1[:, 0], e1[:, 1])
    area = np.abs(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])
    h = np.divide(area, w, out=np.zeros_like(w), where=w > 0)
    angle = np.degrees(np.arctan2(e1[:, 1], e1[:, 0]))
    box = normalise_le90(np.stack([*p.mean(1).T, w, h, angle], 1))
    box[:, 4] = np.radians(box[:, 4])
    return box


def map_boxes(obb: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Boxes (θ radians) through a 2x3 affine map."""
    if not len(obb):
        return np.zeros((0, 5))
    pts = corners(obb, degrees=False)
    moved = pts @ matrix[:, :2].T + matrix[:, 2]
    return obb_from_corners(moved)


def rotated_iou(a: np.ndarray, b: np.ndarray, degrees: bool = True) -> np.ndarray:
    """IoU matrix [N, M] of rotated boxes by exact convex-polygon intersection (shapely).
    Only pairs whose circumscribed circles meet are intersected; degenerate boxes (zero area)
    have IoU 0 with everything, themselves included."""
    import shapely

    a = np.asarray(a, np.float64).reshape(-1, 5)
    b = np.asarray(b, np.float64).reshape(-1, 5)
    out = np.zeros((len(a), len(b)))
    if not len(a) or not len(b):
        return out
    area_a = np.clip(a[:, 2], 0, None) * np.clip(a[:, 3], 0, None)
    area_b = np.clip(b[:, 2], 0, None) * np.clip(b[:, 3], 0, None)
    radius_a = np.hypot(a[:, 2], a[:, 3]) / 2
    radius_b = np.hypot(b[:, 2], b[:, 3]) / 2
    gap = np.hypot(a[:, None, 0] - b[None, :, 0], a[:, None, 1] - b[None, :, 1])
    near = (gap < radius_a[:, None] + radius_b[None, :]) & (area_a[:, None] > 0)
    near &= area_b[None, :] > 0
    rows, cols = np.nonzero(near)
    if not len(rows):
        return out
    poly_a = shapely.polygons(corners(a, degrees))
    poly_b = shapely.polygons(corners(b, degrees))
    inter = shapely.area(shapely.intersection(poly_a[rows], poly_b[cols]))
    union = area_a[rows] + area_b[cols] - inter
    out[rows, cols] = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    return np.clip(out, 0.0, 1.0)


def rotated_nms(
    obb: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray,
    iou_threshold: float,
    degrees: bool = False,
) -> np.ndarray:
    """Indices kept by class-wise greedy NMS, best first: a box is dropped when it overlaps a
    kept box of its class by more than `iou_threshold` (rotated IoU).

    Only the IoUs greedy NMS reads are computed: each kept box against the later boxes of its
    class still alive whose circumscribed circles meet it and whose area ratio lets the IoU
    exceed the threshold (IoU ≤ smaller area / larger area). An untrained model's 300
    candidates would otherwise cost 90,000 polygon intersections per image, which made
    validation cost more than training in the first epochs."""
    import shapely

    scores = np.asarray(scores, np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    order = np.argsort(-scores, kind="stable")
    if not len(order):
        return order.astype(np.int64)
    boxes = np.asarray(obb, np.float64).reshape(-1, 5)[order]
    label = labels[order]
    area = np.clip(boxes[:, 2], 0, None) * np.clip(boxes[:, 3], 0, None)
    radius = np.hypot(boxes[:, 2], boxes[:, 3]) / 2
    polygons = shapely.polygons(corners(boxes, degrees))
    alive = np.ones(len(order), bool)
    keep: list[int] = []
    for i in range(len(order)):
        if not alive[i]:
            continue
        keep.append(i)
        if area[i] <= 0:  # a degenerate box overlaps nothing: kept, never suppressing
            continue
        rest = np.flatnonzero(alive[i + 1 :]) + i + 1
        rest = rest[(label[rest] == label[i]) & (area[rest] > 0)]
        gap = np.hypot(boxes[rest, 0] - boxes[i, 0], boxes[rest, 1] - boxes[i, 1])
        ratio = np.minimum(area[rest], area[i]) / np.maximum(area[rest], area[i])
        rest = rest[(gap < radius[rest] + radius[i]) & (ratio > iou_threshold)]
        if not len(rest):
            continue
        inter = shapely.area(shapely.intersection(polygons[i], polygons[rest]))
        iou = inter / (area[i] + area[rest] - inter)
        alive[rest[iou > iou_threshold]] = False
    return order[np.asarray(keep, np.int64)]


def postprocess(
    obb: np.ndarray,
    scores: np.ndarray,
    *,
    score_floor: float,
    nms_iou: float,
    max_detections: int,
    candidates: int = 300,
) -> dict[str, np.ndarray]:
    """Raw per-location outputs of the oriented head (obb [N, 5] in input pixels with θ in
    radians, class scores [N, C]) → detections {"obb" (le90, degrees), "scores", "labels"
    (0-based)}: scores ≥ floor, the best `candidates`, class-wise rotated NMS, the best
    `max_detections`. The PyTorch evaluation and the exported model's decoder both call it."""
    obb = np.asarray(obb, np.float64).reshape(-1, 5)
    scores = np.asarray(scores, np.float64).reshape(len(obb), -1)
    where, label = np.nonzero(scores >= score_floor)
    value = scores[where, label]
    top = np.argsort(-value, kind="stable")[:candidates]
    where, label, value = where[top], label[top], value[top]
    boxes = normalise_le90(
        np.concatenate([obb[where, :4], np.degrees(obb[where, 4:5])], 1), degrees=True
    )
    keep = rotated_nms(boxes, value, label, nms_iou, degrees=True)[:max_detections]
    return {"obb": boxes[keep], "scores": value[keep], "labels": label[keep].astype(np.int64)}
