"""Instance-segmentation export: Mask R-CNN wrapped to take one SxS image and return `boxes`
(xyxy, input pixels), `scores`, `labels` (0-based) and `masks` ([N, S, S] probabilities pasted
into the input image; ≥ 0.5 is the object), with a dynamic number of instances, batch 1, as
detection's export (scripted for TorchScript, the legacy ONNX exporter at opset 17).

Parity matches instances, as detection's matches boxes: per image, checkpoint and export
instances of the same class scoring at least the export's score threshold (and 0.05) are
paired greedily by score at mask IoU ≥ 0.5. Tolerances (stated in every report):
- fp32 (onnx, torchscript): matched fraction ≥ 0.99, mean mask IoU on matches ≥ 0.99, largest
  score difference ≤ 1e-3, mask mAP50 difference ≤ 0.01;
- onnx_int8: matched fraction ≥ 0.8 and a mask mAP50 drop ≤ 0.03.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from workers.ml.export.parity import check, empty_report, metric_pair, report
from workers.ml.tasks.base import ExportModule, InferenceModel, Outputs, Sample
from workers.ml.tasks.detection import metrics as det_metrics
from workers.ml.tasks.detection.export import MIN_COMPARED_SCORE
from workers.ml.tasks.detection.matching import greedy_match
from workers.ml.tasks.instance_segmentation import metrics as inst_metrics
from workers.ml.tasks.instance_segmentation.data import instance_targets, masks_of
from workers.ml.tasks.instance_segmentation.decode import MASK_THRESHOLD


@dataclass(frozen=True)
class InstanceTolerances:
    min_matched: float
    min_mask_iou: float | None = None
    max_score_diff: float | None = None
    max_map_delta: float | None = None  # |delta| for fp32; drop for int8


TOLERANCES = {
    "onnx": InstanceTolerances(0.99, 0.99, 1e-3, 0.01),
    "torchscript": InstanceTolerances(0.99, 0.99, 1e-3, 0.01),
    "onnx_int8": InstanceTolerances(0.8, None, None, 0.03),
}
OUTPUTS = ["boxes", "scores", "labels", "masks"]


class ExportedInstances(nn.Module):
    """One image in, four tensors out; scripted torchvision models return (losses, results)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.model([x[0]])
        if torch.jit.is_scripting():  # noqa: SIM108 (TorchScript compiles only this branch)
            found = out[1][0]
        else:
            found = out[0]
        masks = found["masks"][:, 0]
        return found["boxes"], found["scores"], found["labels"] - 1, masks


def export_module(model: InferenceModel) -> ExportModule:
    return ExportModule(
        module=ExportedInstances(model.model).eval(),
        output_names=list(OUTPUTS),
        batch=1,
        output_axes={name: {0: "detections"} for name in OUTPUTS},
        script=True,
        postprocess={
            "boxes": "xyxy in input pixels; multiply x by width/S and y by height/S",
            "labels": "0-based indices into classes",
            "masks": "[N, S, S] probabilities in input pixels; resize to the original image "
            "and keep >= 0.5",
            "keep": "score >= score_threshold",
            "nms": "done inside the model",
        },
    )


def _above(outputs: Outputs, floor: float) -> Outputs:
    keep = np.asarray(outputs["scores"]) >= floor
    return {k: np.asarray(v)[keep] for k, v in outputs.items()}


def _truths(samples: list[Sample], meta: dict[str, Any]) -> list[tuple[np.ndarray, ...]]:
    """Truth masks of each sample in the exported model's input pixels (SxS)."""
    side = int(meta["input"]["shape"][-1])
    out = []
    for sample in samples:
        instances, _ = instance_targets(sample, list(meta["classes"]))
        masks, labels, ignore = masks_of(instances, max(1, sample.width), max(1, sample.height))
        small = (
            np.stack(
                [
                    np.asarray(Image.fromarray(m).resize((side, side), Image.Resampling.NEAREST))
                    for m in masks
                ]
            )
            if len(masks)
            else np.zeros((0, side, side), np.uint8)
        )
        out.append((small.astype(bool), labels, ignore.astype(np.int64)))
    return out


def _map50(outputs: list[Outputs], truths: list[tuple[np.ndarray, ...]]) -> float | None:
    metric = det_metrics.new_metric(per_class=False, iou_type="segm")
    for found, (masks, labels, crowd) in zip(outputs, truths, strict=True):
        probs = np.asarray(found["masks"], np.float32)
        metric.update(
            [
                inst_metrics.as_preds(
                    found["boxes"],
                    found["scores"],
                    np.asarray(found["labels"]) + 1,
                    probs.reshape(-1, *masks.shape[-2:]) >= MASK_THRESHOLD,
                )
            ],
            [inst_metrics.as_target(masks, labels, crowd)],
        )
    value = float(metric.compute()["map_50"])
    return None if value < 0 else value


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
    matched = total = 0
    ious: list[float] = []
    score_diff = 0.0
    for ref_all, cand_all in zip(reference, candidate, strict=True):
        ref, cand = _above(ref_all, floor), _above(cand_all, floor)
        c_masks, r_masks = cand["masks"] >= MASK_THRESHOLD, ref["masks"] >= MASK_THRESHOLD
        iou = inst_metrics.mask_iou(c_masks, r_masks)
        # An untrained head's masks may be empty on both sides (IoU 0 even with themselves):
        # two empty masks agree all the same.
        empty_c = c_masks.sum(axis=(1, 2)) == 0
        empty_r = r_masks.sum(axis=(1, 2)) == 0
        iou = np.maximum(iou, (empty_c[:, None] & empty_r[None, :]).astype(np.float64))
        result = greedy_match(iou, cand["labels"], cand["scores"], ref["labels"], threshold=0.5)
        matched += len(result.tp)
        total += max(len(ref["scores"]), len(cand["scores"]))
        for c, r, value in result.tp:
            ious.append(value)
            score_diff = max(score_diff, float(abs(cand["scores"][c] - ref["scores"][r])))
    fraction = matched / total if total else 1.0
    mean_iou = float(np.mean(ious)) if ious else 1.0
    min_iou = float(np.min(ious)) if ious else 1.0
    truths = _truths(samples, meta)
    metrics = metric_pair(_map50(reference, truths), _map50(candidate, truths))
    delta = metrics["metric_delta"]
    checks = [check("matched_fraction", fraction, ">=", tol.min_matched)]
    if tol.min_mask_iou is not None:
        checks.append(check("mean_mask_iou", mean_iou, ">=", tol.min_mask_iou))
    if tol.max_score_diff is not None:
        checks.append(check("max_score_diff", score_diff, "<=", tol.max_score_diff))
    if tol.max_map_delta is not None and delta is not None:
        int8 = fmt == "onnx_int8"
        checks.append(
            check(
                "map50_mask_drop" if int8 else "map50_mask_delta",
                -delta if int8 else abs(delta),
                "<=",
                tol.max_map_delta,
            )
        )
    return report(
        tol,
        samples=len(reference),
        checks=checks,
        measures=[
            {
                "key": "matched_fraction",
                "title": "Instances matched (mask IoU ≥ 0.5)",
                "value": fraction * 100,
                "percent": True,
            },
            {
                "key": "mean_mask_iou",
                "title": "Mean mask IoU on matches",
                "value": mean_iou,
                "digits": 4,
            },
            {
                "key": "min_mask_iou",
                "title": "Lowest mask IoU on a match",
                "value": min_iou,
                "digits": 4,
            },
            {
                "key": "max_score_diff",
                "title": "Largest score difference",
                "value": score_diff,
                "digits": 3,
            },
            {"key": "detections", "title": "Instances compared", "value": total},
        ],
        metric="map50_mask",
        metrics=metrics,
        detections=total,
        compared_from_score=floor,
        matched_fraction=fraction,
        mean_mask_iou=mean_iou,
        min_mask_iou=min_iou,
        max_score_diff=score_diff,
    )
