"""Oriented-detection outputs → objects in original pixels. Numpy only (and shapely): the
predictor and examples/predict_onnx.py use it without torch.

The exported graph ends before NMS (ONNX has no rotated NMS): it returns, per location, the
decoded box `obb` (cx, cy, w, h in input pixels, θ in radians, any angle) and `scores`
(√(class probability * centre-ness)) per class. Decoding, written into metadata.json too:
scores ≥ threshold → best 300 → class-wise rotated NMS → le90 → scale to original pixels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from workers.ml.tasks.base import Decoder, Outputs
from workers.ml.tasks.detection.decode import threshold_of
from workers.ml.tasks.oriented_detection.geometry import corners, map_boxes, postprocess


def decode_outputs(outputs: Outputs, meta: dict[str, Any], floor: float) -> dict[str, np.ndarray]:
    """One image's raw outputs → detections in input pixels (le90, degrees)."""
    post = meta.get("postprocess") or {}
    return postprocess(
        np.asarray(outputs["obb"]).reshape(-1, 5),
        np.asarray(outputs["scores"]).reshape(-1, len(meta["classes"])),
        score_floor=floor,
        nms_iou=float(post.get("nms_iou", meta.get("nms_iou", 0.3))),
        max_detections=int(post.get("max_detections", meta.get("max_detections", 100))),
    )


def to_original(obb: np.ndarray, side: float, size: tuple[int, int]) -> np.ndarray:
    """Boxes (le90, degrees) from SxS input pixels to an original WxH image."""
    box = np.asarray(obb, np.float64).reshape(-1, 5).copy()
    box[:, 4] = np.radians(box[:, 4])
    matrix = np.array([[size[0] / side, 0, 0], [0, size[1] / side, 0]])
    out = map_boxes(box, matrix)
    out[:, 4] = np.degrees(out[:, 4])
    return out


def obb_dict(box: np.ndarray) -> dict[str, float]:
    cx, cy, w, h, angle = (round(float(v), 2) for v in box)
    return {"cx": cx, "cy": cy, "w": w, "h": h, "angle": angle}


class OrientedDecoder(Decoder):
    task = "oriented_detection"

    def decode(
        self,
        outputs: Outputs,
        *,
        meta: dict[str, Any],
        size: tuple[int, int],
        options: dict[str, Any],
    ) -> dict[str, Any]:
        """{"objects": [{"class", "index", "score", "obb": {"cx", "cy", "w", "h", "angle"},
        "points": [[x, y] x 4]}]}, best first, scores ≥ the request's score_threshold (else
        the export's); angle in degrees, le90."""
        classes: list[str] = list(meta["classes"])
        found = decode_outputs(outputs, meta, threshold_of(meta, options))
        side = float(meta["input"]["shape"][-1])
        boxes = to_original(found["obb"], side, size)
        objects = []
        for box, score, label, points in zip(
            boxes, found["scores"], found["labels"], corners(boxes), strict=True
        ):
            index = int(label)
            objects.append(
                {
                    "class": classes[index] if 0 <= index < len(classes) else str(index),
                    "index": index,
                    "score": round(float(score), 4),
                    "obb": obb_dict(box),
                    "points": [[round(float(x), 2), round(float(y), 2)] for x, y in points],
                }
            )
        return {"objects": objects}
