"""Classification export: the network's logits as the one output, and the parity check.

Tolerances (stated in every report):
- fp32 formats (onnx, torchscript): max |output difference| ≤ 1e-4 on every output element.
- onnx_int8: quantization changes outputs by design, so it is judged by its effect: the
  primary metric may drop by at most 1 point (0.01) and top-1 agreement with the checkpoint
  must be ≥ 0.97. Output differences are reported but not judged.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from workers.ml.export.parity import (
    Tolerances,
    check,
    empty_report,
    max_abs_diff,
    metric_pair,
    report,
)
from workers.ml.tasks.base import ExportModule, InferenceModel, Outputs, Sample
from workers.ml.tasks.classification.decode import ClassificationDecoder

TOLERANCES: dict[str, Tolerances] = {
    "onnx": Tolerances(max_abs_diff=1e-4),
    "torchscript": Tolerances(max_abs_diff=1e-4),
    "onnx_int8": Tolerances(min_top1_agreement=0.97, max_metric_drop=0.01),
}


def export_module(model: InferenceModel) -> ExportModule:
    several = bool(model.info.get("multi_label"))
    return ExportModule(
        module=model.model,
        output_names=["logits"],
        postprocess={
            "activation": "sigmoid" if several else "softmax",
            "decision": "score >= threshold per class" if several else "argmax",
        },
    )


def targets_of(samples: list[Sample], classes: list[str], multi_label: bool) -> list[Any]:
    """True labels as class indices (a list for multi-label; None when not scorable)."""
    index = {name: i for i, name in enumerate(classes)}
    targets: list[Any] = []
    for sample in samples:
        found = sorted({index[n] for n in sample.class_names("label") if n in index})
        if multi_label:
            targets.append(found)
        else:
            targets.append(found[0] if len(found) == 1 else None)
    return targets


def parity(
    *,
    fmt: str,
    reference: list[Outputs],
    candidate: list[Outputs],
    samples: list[Sample],
    meta: dict[str, Any],
) -> dict[str, Any]:
    """Element-wise output differences, decision agreement, and the metric from both."""
    tol = TOLERANCES[fmt]
    if not reference:
        return empty_report(tol)
    decoder = ClassificationDecoder()
    ref = np.stack([np.asarray(o["logits"]) for o in reference])
    cand = np.stack([np.asarray(o["logits"]) for o in candidate])
    largest, mean = max_abs_diff(reference, candidate)
    agreement = decoder.agreement(ref, cand, meta=meta)
    targets = targets_of(samples, list(meta["classes"]), bool(meta.get("multi_label")))
    labelled = [i for i, t in enumerate(targets) if t is not None]
    picked = [targets[i] for i in labelled]
    metrics = metric_pair(
        decoder.metric(ref[labelled], picked, meta=meta) if labelled else None,
        decoder.metric(cand[labelled], picked, meta=meta) if labelled else None,
    )
    delta = metrics["metric_delta"]
    checks: list[dict[str, Any]] = []
    if tol.max_abs_diff is not None:
        checks.append(check("max_abs_diff", largest, "<=", tol.max_abs_diff))
    if tol.min_top1_agreement is not None:
        checks.append(check("top1_agreement", agreement, ">=", tol.min_top1_agreement))
    if tol.max_metric_drop is not None:
        drop = None if delta is None else -delta
        checks.append(check("metric_drop", drop, "<=", tol.max_metric_drop))
    return report(
        tol,
        samples=len(reference),
        checks=checks,
        measures=[
            {"key": "max_abs_diff", "title": "Max |Δ output|", "value": largest, "digits": 3},
            {"key": "mean_abs_diff", "title": "Mean |Δ output|", "value": mean, "digits": 3},
            {
                "key": "top1_agreement",
                "title": "Top-1 agreement",
                "value": None if agreement != agreement else agreement * 100,
                "percent": True,
            },
        ],
        metric=decoder.primary_metric,
        metrics=metrics,
        labelled=len(labelled),
        max_abs_diff=largest,
        mean_abs_diff=mean,
        top1_agreement=agreement,
    )
