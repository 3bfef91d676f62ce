"""Instance outputs (boxes xyxy, scores, labels, masks [N, S, S] probabilities in input pixels)
→ objects in original pixels. Numpy, PIL and shapely only: the predictor uses it without
torch.

A mask becomes a polygon by tracing its pixel edges (the union of each row's runs, so the
outline follows pixel corners), then simplified by Douglas-Peucker with a tolerance of one
model pixel and scaled to the original image; an object in several pieces gives its largest
piece's outline. The ring is made canonical before simplifying (it starts at its top-left
corner and runs clockwise on screen, one vertex per corner), and the simplification is plain
numpy rather than GEOS's, so the outline depends on the mask alone — not on the order GEOS
happens to emit a union's vertices in — and examples/predict_onnx.py, which restates these
rules with numpy and Pillow, reproduces it exactly.
On request ("rle": true) each object also carries its mask at the original size as COCO
uncompressed RLE (column-major counts starting with background).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from workers.ml.tasks.base import Decoder, Outputs
from workers.ml.tasks.detection.decode import threshold_of

MASK_THRESHOLD = 0.5
SIMPLIFY = 1.0  # px of the mask's own grid: removes the staircase of pixel edges


def canonical_ring(ring: np.ndarray) -> np.ndarray:
    """A closed ring (first vertex not repeated) without collinear vertices, starting at its
    smallest (y, x) vertex and heading right from it (clockwise on screen, y down)."""
    ring = np.asarray(ring, np.float64)
    before, after = ring - np.roll(ring, 1, axis=0), np.roll(ring, -1, axis=0) - ring
    turns = before[:, 0] * after[:, 1] - before[:, 1] * after[:, 0]
    ring = ring[turns != 0]
    start = int(np.lexsort((ring[:, 0], ring[:, 1]))[0])
    ring = np.roll(ring, -start, axis=0)
    return ring if ring[1][1] == ring[0][1] else np.vstack([ring[:1], ring[:0:-1]])


def simplify_ring(ring: np.ndarray, tolerance: float) -> np.ndarray:
    """Douglas-Peucker on a closed ring, split at its first vertex and the vertex farthest
    from it; a ring that would fall under 3 vertices is kept as it is."""
    if len(ring) <= 3:
        return ring

    def keep(points: np.ndarray) -> list[int]:
        a, b = points[0], points[-1]
        d = points[1:-1] - a
        ab = b - a
        norm = float(np.hypot(*ab))
        dist = np.abs(ab[0] * d[:, 1] - ab[1] * d[:, 0]) / norm if norm else np.hypot(*d.T)
        if not len(dist) or dist.max() <= tolerance:
            return [0]
        k = int(dist.argmax()) + 1
        return keep(points[: k + 1]) + [k + i for i in keep(points[k:])]

    far = int(np.hypot(*(ring - ring[0]).T).argmax())
    closed = np.vstack([ring, ring[:1]])
    chosen = keep(closed[: far + 1]) + [far + i for i in keep(closed[far:])]
    return ring if len(chosen) < 3 else ring[chosen]


def mask_rings(mask: np.ndarray, tolerance: float = SIMPLIFY) -> list[list[list[float]]]:
    """Outer rings of a boolean [H, W] mask's 4-connected pieces, largest first (ties: the
    piece whose top-left corner comes first row by row), in pixel-corner coordinates of the
    mask's grid (a pixel (x, y) spans x..x+1)."""
    from shapely import box, union_all
    from shapely.geometry import MultiPolygon, Polygon

    mask = np.asarray(mask, bool)
    if not mask.any():
        return []
    padded = np.pad(mask, ((0, 0), (1, 1))).astype(np.int8)
    edges = np.diff(padded, axis=1)
    rows_on, starts = np.nonzero(edges == 1)
    _, ends = np.nonzero(edges == -1)
    shape = union_all(box(starts, rows_on, ends, rows_on + 1))
    pieces = list(shape.geoms) if isinstance(shape, MultiPolygon) else [shape]
    rings = [
        (-p.area, canonical_ring(np.asarray(p.exterior.coords[:-1])))
        for p in pieces
        if isinstance(p, Polygon) and not p.is_empty
    ]
    rings.sort(key=lambda r: (r[0], r[1][0][1], r[1][0][0]))
    return [simplify_ring(r, tolerance).tolist() for _, r in rings]


def scaled_ring(ring: list[list[float]], sx: float, sy: float) -> list[list[float]]:
    return [[round(x * sx, 2), round(y * sy, 2)] for x, y in ring]


def rle_encode(mask: np.ndarray) -> dict[str, Any]:
    """COCO uncompressed RLE of a boolean [H, W] mask."""
    flat = np.asarray(mask, bool).flatten(order="F").astype(np.int8)
    changes = np.flatnonzero(np.diff(np.concatenate([[0], flat, [0]])))
    runs = np.diff(np.concatenate([[0], changes]))
    counts = [int(c) for c in runs]
    if flat.size and counts and sum(counts) < flat.size:
        counts.append(int(flat.size - sum(counts)))
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts or [int(flat.size)]}


def resize_probability(prob: np.ndarray, width: int, height: int) -> np.ndarray:
    """A [S, S] probability map bilinearly resized to the original image."""
    picture = Image.fromarray(np.asarray(prob, np.float32), mode="F")
    return np.asarray(picture.resize((width, height), Image.Resampling.BILINEAR))


class InstanceDecoder(Decoder):
    task = "instance_segmentation"

    def decode(
        self,
        outputs: Outputs,
        *,
        meta: dict[str, Any],
        size: tuple[int, int],
        options: dict[str, Any],
    ) -> dict[str, Any]:
        """{"objects": [{"class", "index", "score", "bbox", "polygon"[, "rle"]}]}, best first,
        keeping scores ≥ the request's score_threshold (else the export's); objects whose
        mask is empty at the threshold are left out."""
        classes: list[str] = list(meta["classes"])
        side = float(meta["input"]["shape"][-1])
        sx, sy = size[0] / side, size[1] / side
        boxes = np.asarray(outputs["boxes"], np.float64).reshape(-1, 4)
        scores = np.asarray(outputs["scores"], np.float64).reshape(-1)
        labels = np.asarray(outputs["labels"], np.int64).reshape(-1)
        masks = np.asarray(outputs["masks"], np.float32)
        masks = masks.reshape(len(scores), *masks.shape[-2:]) if len(scores) else masks
        keep = scores >= threshold_of(meta, options)
        objects = []
        for i in np.flatnonzero(keep)[np.argsort(-scores[keep], kind="stable")]:
            rings = mask_rings(masks[i] >= MASK_THRESHOLD)
            if not rings:
                continue
            x0, y0, x1, y1 = boxes[i] * [sx, sy, sx, sy]
            index = int(labels[i])
            obj: dict[str, Any] = {
                "class": classes[index] if 0 <= index < len(classes) else str(index),
                "index": index,
                "score": round(float(scores[i]), 4),
                "bbox": {
                    "x": round(float(x0), 2),
                    "y": round(float(y0), 2),
                    "w": round(float(x1 - x0), 2),
                    "h": round(float(y1 - y0), 2),
                },
                "polygon": scaled_ring(rings[0], sx, sy),
            }
            if options.get("rle"):
                full = resize_probability(masks[i], size[0], size[1]) >= MASK_THRESHOLD
                obj["rle"] = rle_encode(full)
            objects.append(obj)
        return {"objects": objects}
