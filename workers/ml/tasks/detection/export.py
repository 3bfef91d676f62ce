"""Detection export: the detector wrapped to take one SxS image and return `boxes` (xyxy, input
pixels), `scores` and `labels` (0-based class indices), with a dynamic number of detections;
the legacy ONNX exporter at opset 17 handles torchvision's detectors (NOTES.md), one image at
a time (batch 1). Pre- and post-processing go into the metadata.

Parity matches boxes instead of comparing elements (NMS may order ties differently):
per image, checkpoint and export detections of the same class scoring at least the export's
score threshold (and 0.05) are paired greedily by score at IoU ≥ 0.5; mAP50 of both uses every
detection. Tolerances (stated in every report):
- fp32 (onnx, torchscript): matched fraction ≥ 0.99, largest box-coordinate difference on
  matches ≤ 0.5 px, largest score difference ≤ 1e-3, mAP50 difference ≤ 0.01;
- onnx_int8: matched fraction ≥ 0.8 and an mAP50 drop ≤ 0.03.
An export of an untrained model may have no detections at all: fractions are then 1.0 (nothing
to disagree on) and mAP is reported as unavailable, never a division by zero.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from workers.ml.export.parity import check, empty_report, metric_pair, report
from workers.ml.tasks.base import ExportModule, InferenceModel, Outputs, Sample
from workers.ml.tasks.detection import metrics as det_metrics
from workers.ml.tasks.detection.data import box_targets
from workers.ml.tasks.detection.matching import box_iou, greedy_match


@dataclass(frozen=True)
class DetectionTolerances:
    min_matched: float
    max_box_diff: float | None = None
    max_score_diff: float | None = None
    max_map_delta: float | None = None  # |delta| for fp32; drop for int8


TOLERANCES = {
    "onnx": DetectionTolerances(0.99, 0.5, 1e-3, 0.01),
    "torchscript": DetectionTolerances(0.99, 0.5, 1e-3, 0.01),
    "onnx_int8": DetectionTolerances(0.8, None, None, 0.03),
}
OUTPUTS = ["boxes", "scores", "labels"]
MIN_COMPARED_SCORE = 0.05


def _above(outputs: Outputs, floor: float) -> Outputs:
    keep = np.asarray(outputs["scores"]) >= floor
    return {k: np.asarray(v)[keep] for k, v in outputs.items()}


class ExportedDetector(nn.Module):
    """One image in, three tensors out. TorchScript exports script it (a trace would bake the
    example's data-dependent sizes, such as how many candidates survive, into the graph);
    scripted torchvision detectors return (losses, detections)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.model([x[0]])
        if torch.jit.is_scripting():  # noqa: SIM108 (TorchScript compiles only this branch)
            found = out[1][0]
        else:
            found = out[0]
        return found["boxes"], found["scores"], found["labels"] - 1


def export_module(model: InferenceModel) -> ExportModule:
    return ExportModule(
        module=ExportedDetector(model.model).eval(),
        output_names=list(OUTPUTS),
        batch=1,
        output_axes={name: {0: "detections"} for name in OUTPUTS},
        script=True,
        postprocess={
            "boxes": "xyxy in input pixels; multiply x by width/S and y by height/S",
            "labels": "0-based indices into classes",
            "keep": "score >= score_threshold",
            "nms": "done inside the model",
        },
    )


def _map50(outputs: list[Outputs], truths: list[dict[str, Any]]) -> float | None:
    metric = det_metrics.new_metric(per_class=False)
    for found, truth in zip(outputs, truths, strict=True):
        metric.update(
            [
                det_metrics.as_preds(
                    found["boxes"], found["scores"], np.asarray(found["labels"]) + 1
                )
            ],
            [det_metrics.as_target(*truth)],
        )
    value = float(metric.compute()["map_50"])
    return None if value < 0 else value


def _truths(samples: list[Sample], meta: dict[str, Any]) -> list[Any]:
    """Truth of each sample in the exported model's input pixels (SxS)."""
    side = float(meta["input"]["shape"][-1])
    out = []
    for sample in samples:
        target, _ = box_targets(sample, list(meta["classes"]))
        scale = np.array([side / max(1, sample.width), side / max(1, sample.height)] * 2)
        boxes = (
            np.array(target["boxes"] + target["ignore_boxes"], np.float64).reshape(-1, 4) * scale
        )
        labels = np.array(target["labels"] + target["ignore_labels"], np.int64)
        crowd = np.array([0] * len(target["boxes"]) + [1] * len(target["ignore_boxes"]))
        out.append((boxes, labels, crowd))
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
    # Boxes a user can see: low-scoring ones tie in an untrained model and NMS may keep
    # either of two equal boxes, which says nothing about the export.
    floor = max(MIN_COMPARED_SCORE, float(meta.get("score_threshold", 0.0)))
    tally = tally_matches(
        [(_above(r, floor), _above(c, floor)) for r, c in zip(reference, candidate, strict=True)],
        key="boxes",
        iou=box_iou,
        coordinates=lambda boxes: np.asarray(boxes, np.float64).reshape(-1, 4),
    )
    truths = _truths(samples, meta)
    metrics = metric_pair(_map50(reference, truths), _map50(candidate, truths))
    return matching_report(fmt, tol, tally, metrics, samples=len(reference), floor=floor)


def matching_report(
    fmt: str,
    tol: DetectionTolerances,
    tally: Tally,
    metrics: dict[str, float | None],
    *,
    samples: int,
    floor: float,
    what: str = "Boxes",
) -> dict[str, Any]:
    """The parity report of an object task from its match tally and mAP50 pair."""
    fraction = tally.matched / tally.total if tally.total else 1.0
    delta = metrics["metric_delta"]
    checks = [check("matched_fraction", fraction, ">=", tol.min_matched)]
    if tol.max_box_diff is not None:
        checks.append(check("max_box_diff", tally.box_diff, "<=", tol.max_box_diff))
    if tol.max_score_diff is not None:
        checks.append(check("max_score_diff", tally.score_diff, "<=", tol.max_score_diff))
    if tol.max_map_delta is not None and delta is not None:
        value = abs(delta) if fmt != "onnx_int8" else -delta
        checks.append(
            check(
                "map50_delta" if fmt != "onnx_int8" else "map50_drop",
                value,
                "<=",
                tol.max_map_delta,
            )
        )
    return report(
        tol,
        samples=samples,
        checks=checks,
        measures=[
            {
                "key": "matched_fraction",
                "title": f"{what} matched (IoU ≥ 0.5)",
                "value": fraction * 100,
                "percent": True,
            },
            {
                "key": "max_box_diff",
                "title": "Largest box-coordinate difference (px)",
                "value": tally.box_diff,
                "digits": 3,
            },
            {
                "key": "max_score_diff",
                "title": "Largest score difference",
                "value": tally.score_diff,
                "digits": 3,
            },
            {"key": "detections", "title": "Detections compared", "value": tally.total},
        ],
        metric="map50",
        metrics=metrics,
        detections=tally.total,
        compared_from_score=floor,
        matched_fraction=fraction,
        max_box_diff=tally.box_diff,
        max_score_diff=tally.score_diff,
    )


@dataclass
class Tally:
    """Export parity by matching: how many objects paired, of how many, and the largest
    coordinate and score differences between paired objects."""

    matched: int = 0
    total: int = 0
    box_diff: float = 0.0
    score_diff: float = 0.0


def tally_matches(
    pairs: list[tuple[Outputs, Outputs]],
    *,
    key: str,
    iou: Callable[[np.ndarray, np.ndarray], np.ndarray],
    coordinates: Callable[[np.ndarray], np.ndarray],
    difference: Callable[[np.ndarray, np.ndarray], float] | None = None,
) -> Tally:
    """Pair each image's (reference, candidate) objects of the same class greedily by score at
    IoU ≥ 0.5 (`iou` of the `key` geometry: boxes, rotated boxes, masks); the differences are
    measured on `coordinates` (box corners), by `difference` where one object has several
    spellings (a rotated box's corners in another order). Any object task's parity uses it."""
    tally = Tally()
    for ref, cand in pairs:
        overlap = iou(ref[key], cand[key])
        a, b = coordinates(ref[key]), coordinates(cand[key])
        # An untrained head emits zero-area boxes (IoU 0 even with themselves): the same
        # box on both sides is a match all the same.
        if len(a) and len(b):
            same = np.abs(a[:, None, :] - b[None, :, :]).max(-1) <= 1e-3
            overlap = np.maximum(overlap, same.astype(np.float64))
        result = greedy_match(
            overlap.T, cand["labels"], cand["scores"], ref["labels"], threshold=0.5
        )
        tally.matched += len(result.tp)
        tally.total += max(len(ref["scores"]), len(cand["scores"]))
        for c, r, _ in result.tp:
            gap = difference(b[c], a[r]) if difference else float(np.abs(b[c] - a[r]).max())
            tally.box_diff = max(tally.box_diff, gap)
            tally.score_diff = max(
                tally.score_diff, float(abs(cand["scores"][c] - ref["scores"][r]))
            )
    return tally
