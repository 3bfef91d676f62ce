"""Oriented-detection export: the network up to NMS, as ONNX or TorchScript with a dynamic
batch. Outputs per image: `obb` [N, 5] (every location's decoded box: cx, cy, w, h in input
pixels, θ in radians, not yet normalised) and `scores` [N, C] (√(class probability *
centre-ness)). ONNX has no rotated NMS, so the rest is documented in metadata.json
("postprocess") and done in numpy by decode.py (the predictor, examples/predict_onnx.py):
threshold, top 300, class-wise rotated NMS, le90, scale to the original image.

Parity decodes both sides with that same numpy code and matches rotated boxes (the detection
task's tally: same class, greedy by score, rotated IoU ≥ 0.5), so NMS tie order cannot fail
it; box differences are measured on the four corners, which no angle wrap can fake. The
tolerances are detection's (fp32: ≥ 99 % matched, corners within 0.5 px, scores within 1e-3,
mAP50 within 0.01; INT8: ≥ 80 % matched, mAP50 drop ≤ 0.03).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from workers.ml.export.parity import empty_report, metric_pair
from workers.ml.tasks.base import ExportModule, InferenceModel, Outputs, Sample
from workers.ml.tasks.detection.export import (
    MIN_COMPARED_SCORE,
    TOLERANCES,
    matching_report,
    tally_matches,
)
from workers.ml.tasks.oriented_detection.data import obb_targets
from workers.ml.tasks.oriented_detection.decode import decode_outputs
from workers.ml.tasks.oriented_detection.geometry import corners, map_boxes, rotated_iou
from workers.ml.tasks.oriented_detection.metrics import OrientedMAP
from workers.ml.tasks.oriented_detection.models import scores_of

OUTPUTS = ["obb", "scores"]


class ExportedOriented(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(x)
        return out["obb"], scores_of(out)


def export_module(model: InferenceModel) -> ExportModule:
    info = model.info
    return ExportModule(
        module=ExportedOriented(model.model).eval(),
        output_names=list(OUTPUTS),
        postprocess={
            "obb": "[N, 5] per location: cx, cy, w, h in input pixels (SxS), angle in radians",
            "scores": "[N, C] per location and class: sqrt(sigmoid(class) * sigmoid(centerness))",
            "steps": [
                "keep (location, class) pairs with score >= score_threshold",
                "the 300 best by score",
                "class-wise greedy NMS at rotated IoU > nms_iou (exact polygon intersection)",
                "normalise to le90: long edge w, angle in [-90, 90) degrees",
                "keep max_detections; scale corners by (width/S, height/S) to original pixels",
            ],
            "nms_iou": float(info.get("nms_iou", 0.3)),
            "max_detections": int(info.get("max_detections", 100)),
            "angle": "degrees in the prediction; le90 (w >= h, angle in [-90, 90))",
            "nms": "outside the model (decode.py)",
        },
    )


def _corner_coords(obb: np.ndarray) -> np.ndarray:
    return corners(np.asarray(obb, np.float64).reshape(-1, 5)).reshape(-1, 8)


def _corner_gap(a: np.ndarray, b: np.ndarray) -> float:
    """Largest corner distance between two boxes' corners, over the four ways to pair them
    in order: le90 can start a box's corners on either end of a near-vertical long edge."""
    pa, pb = a.reshape(4, 2), b.reshape(4, 2)
    return min(float(np.abs(np.roll(pa, k, 0) - pb).max()) for k in range(4))


def _map50(
    found: list[dict[str, np.ndarray]], truths: list[tuple[Any, ...]], classes: int
) -> float | None:
    metric = OrientedMAP(classes)
    for f, truth in zip(found, truths, strict=True):
        metric.update(f["obb"], f["scores"], f["labels"], *truth)
    return metric.compute()["map50"]


def _truths(samples: list[Sample], meta: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Truth of each sample in the exported model's input pixels (SxS), angles in degrees."""
    side = float(meta["input"]["shape"][-1])
    out = []
    for sample in samples:
        target, _ = obb_targets(sample, list(meta["classes"]))
        scale = np.array(
            [[side / max(1, sample.width), 0, 0], [0, side / max(1, sample.height), 0]]
        )
        boxes = map_boxes(np.array(target["obb"] + target["ignore_obb"]).reshape(-1, 5), scale)
        boxes[:, 4] = np.degrees(boxes[:, 4])
        labels = np.array(target["labels"] + target["ignore_labels"], np.int64)
        hard = np.array([False] * len(target["obb"]) + [True] * len(target["ignore_obb"]))
        out.append((boxes, labels, hard))
    return out


def parity(
    *,
    fmt: str,
    reference: list[Outputs],
    candidate: list[Outputs],
    samples: list[Sample],
    meta: dict[str, Any],
) -> dict[str, Any]:
    tol = TOLERANCES[fmt]
    if not reference:
        return empty_report(tol)
    floor = max(MIN_COMPARED_SCORE, float(meta.get("score_threshold", 0.0)))
    ref = [decode_outputs(r, meta, floor) for r in reference]
    cand = [decode_outputs(c, meta, floor) for c in candidate]
    tally = tally_matches(
        list(zip(ref, cand, strict=True)),
        key="obb",
        iou=rotated_iou,
        coordinates=_corner_coords,
        difference=_corner_gap,
    )
    truths = _truths(samples, meta)
    classes = len(meta["classes"])
    every = [decode_outputs(r, meta, MIN_COMPARED_SCORE) for r in reference]
    every_c = [decode_outputs(c, meta, MIN_COMPARED_SCORE) for c in candidate]
    metrics = metric_pair(_map50(every, truths, classes), _map50(every_c, truths, classes))
    return matching_report(
        fmt, tol, tally, metrics, samples=len(reference), floor=floor, what="Rotated boxes"
    )
