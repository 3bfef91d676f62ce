"""Segmentation export: logits [N, C, S, S] (dynamic batch) as the one output, and parity.

Tolerances (stated in every report):
- fp32 formats (onnx, torchscript): max |logit difference| ≤ 1e-4 and argmax agreement on
  ≥ 99.9 % of pixels.
- onnx_int8: judged by its effect: pixel agreement ≥ 98 % and an mIoU drop ≤ 0.02 (2 points).
The mIoU of the export is computed next to the checkpoint's on the same images (masks resized
to the model's input side with nearest interpolation), and both are reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from workers.ml.export.parity import check, empty_report, max_abs_diff, metric_pair, report
from workers.ml.tasks.base import ExportModule, InferenceModel, Outputs, Sample
from workers.ml.tasks.segmentation.data import load_mask, mask_target
from workers.ml.tasks.segmentation.decode import SegmentationDecoder, background_of


@dataclass(frozen=True)
class Tolerances:
    max_abs_diff: float | None = None
    min_pixel_agreement: float | None = None
    max_metric_drop: float | None = None


TOLERANCES: dict[str, Tolerances] = {
    "onnx": Tolerances(max_abs_diff=1e-4, min_pixel_agreement=0.999),
    "torchscript": Tolerances(max_abs_diff=1e-4, min_pixel_agreement=0.999),
    "onnx_int8": Tolerances(min_pixel_agreement=0.98, max_metric_drop=0.02),
}


def export_module(model: InferenceModel) -> ExportModule:
    return ExportModule(
        module=model.model,
        output_names=["logits"],
        postprocess={
            "output": "logits [N, C, H, W] at the input size, one channel per class",
            "resize": "bilinear, each class's logits to the original image size",
            "decision": "argmax over classes per pixel → index mask (value = class index)",
            "activation": "softmax over axis 1 for probabilities",
            "ignore_index": 255,
        },
    )


def targets_of(samples: list[Sample], classes: list[str], side: int) -> list[np.ndarray | None]:
    """Each sample's mask at side x side (nearest), None without a mask."""
    background = background_of(classes)
    out: list[np.ndarray | None] = []
    for sample in samples:
        target = mask_target(sample, classes, background)
        if target is None or not sample.width or not sample.height:
            out.append(None)
            continue
        mask = load_mask(target, sample.width, sample.height)
        resized = Image.fromarray(mask).resize((side, side), Image.Resampling.NEAREST)
        out.append(np.asarray(resized))
    return out


def parity(
    *,
    fmt: str,
    reference: list[Outputs],
    candidate: list[Outputs],
    samples: list[Sample],
    meta: dict[str, Any],
) -> dict[str, Any]:
    """Element-wise logit differences, argmax pixel agreement, and mIoU from both."""
    tol = TOLERANCES[fmt]
    if not reference:
        return empty_report(tol)
    decoder = SegmentationDecoder()
    largest, mean = max_abs_diff(reference, candidate)
    ref = [np.asarray(o["logits"]).argmax(axis=0) for o in reference]
    cand = [np.asarray(o["logits"]).argmax(axis=0) for o in candidate]
    same = sum(int((a == b).sum()) for a, b in zip(ref, cand, strict=True))
    agreement = same / max(1, sum(a.size for a in ref))
    classes = list(meta["classes"])
    targets = targets_of(samples, classes, ref[0].shape[-1])
    labelled = [i for i, t in enumerate(targets) if t is not None]
    truth = [targets[i] for i in labelled]
    metrics = metric_pair(
        decoder.metric([ref[i] for i in labelled], truth, len(classes)) if labelled else None,  # type: ignore[arg-type]
        decoder.metric([cand[i] for i in labelled], truth, len(classes)) if labelled else None,  # type: ignore[arg-type]
    )
    delta = metrics["metric_delta"]
    checks: list[dict[str, Any]] = []
    if tol.max_abs_diff is not None:
        checks.append(check("max_abs_diff", largest, "<=", tol.max_abs_diff))
    if tol.min_pixel_agreement is not None:
        checks.append(check("pixel_agreement", agreement, ">=", tol.min_pixel_agreement))
    if tol.max_metric_drop is not None:
        checks.append(
            check("metric_drop", None if delta is None else -delta, "<=", tol.max_metric_drop)
        )
    return report(
        tol,
        samples=len(reference),
        checks=checks,
        measures=[
            {"key": "max_abs_diff", "title": "Max |Δ logit|", "value": largest, "digits": 3},
            {"key": "mean_abs_diff", "title": "Mean |Δ logit|", "value": mean, "digits": 3},
            {
                "key": "pixel_agreement",
                "title": "Argmax pixel agreement",
                "value": agreement * 100,
                "percent": True,
            },
        ],
        metric=decoder.primary_metric,
        metrics=metrics,
        labelled=len(labelled),
        max_abs_diff=largest,
        mean_abs_diff=mean,
        pixel_agreement=agreement,
    )
