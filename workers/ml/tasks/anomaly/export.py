"""Anomaly export: the detector with two named outputs, `score` [N] and `map` [N, 1, H, W];
the threshold, its rule and the score/map ranges travel in the metadata. And the parity check.

Tolerances (stated in every report), with R the score range seen in validation:
- fp32 (onnx, torchscript): max |Δ score| ≤ 1e-4 R, and max |Δ map| ≤ 1e-3 R for single
  map pixels (the map is on the score's scale); where the compared images hold both classes,
  image AUROC within 0.005. R is taken as at least 4 float32 steps of the largest score over
  the relative tolerance: a barely trained detector whose scores all sit near 1.0 (R ~ 1e-3)
  cannot agree closer than float32 resolves, and that says nothing about the export.
- onnx_int8: quantisation changes outputs by design: verdicts at the threshold agree on
  ≥ 95 % of the images and the AUROC drops by at most 0.02.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from workers.ml.export.parity import check, empty_report, finite
from workers.ml.tasks.anomaly.labels import label_of
from workers.ml.tasks.anomaly.metrics import auroc
from workers.ml.tasks.base import ExportModule, InferenceModel, Outputs, Sample

RELATIVE = {"onnx": 1e-4, "torchscript": 1e-4}
MAP_RELATIVE = 1e-3  # single map pixels (SSIM divides small variances): looser than scores
AUROC_CHANGE = {"onnx": 0.005, "torchscript": 0.005, "onnx_int8": 0.02}
MIN_AGREEMENT = 0.95
FLOAT32_STEPS = 4  # float32 rounding differences a faithful export may show on any output


def export_module(model: InferenceModel) -> ExportModule:
    return ExportModule(
        module=model.model,
        output_names=["score", "map"],
        postprocess={
            "score": "image anomaly score; anomalous when score >= threshold (metadata)",
            "map": "anomaly map [1, H, W] at the input size, on the score's scale (the score is "
            "its peak); resize to the original image; map_range (metadata) is its display "
            "range (0 = a normal image's typical value)",
            "threshold_rule": model.info.get("threshold_rule"),
        },
    )


def parity(
    *,
    fmt: str,
    reference: list[Outputs],
    candidate: list[Outputs],
    samples: list[Sample],
    meta: dict[str, Any],
) -> dict[str, Any]:
    tolerances = {
        "relative_diff": RELATIVE.get(fmt),
        "map_relative_diff": MAP_RELATIVE if fmt in RELATIVE else None,
        "auroc_change": AUROC_CHANGE[fmt],
        "verdict_agreement": MIN_AGREEMENT if fmt not in RELATIVE else None,
    }
    if not reference:
        return empty_report(tolerances)
    span = meta.get("score_range") or [0.0, 1.0]
    ref_scores = np.array([float(np.asarray(o["score"]).reshape(-1)[0]) for o in reference])
    cand_scores = np.array([float(np.asarray(o["score"]).reshape(-1)[0]) for o in candidate])
    resolution = FLOAT32_STEPS * float(np.finfo(np.float32).eps) * max(1.0, *np.abs(ref_scores))
    scale = max(float(span[1]) - float(span[0]), resolution / RELATIVE.get(fmt, 1.0), 1e-6)
    score_diff = float(np.abs(ref_scores - cand_scores).max())
    map_diff = max(
        float(np.abs(np.asarray(r["map"], np.float64) - np.asarray(c["map"], np.float64)).max())
        for r, c in zip(reference, candidate, strict=True)
    )
    threshold = float(meta.get("threshold", np.inf))
    agreement = float(np.mean((ref_scores >= threshold) == (cand_scores >= threshold)))
    labels = [label_of(s) for s in samples]
    picked = [i for i, label in enumerate(labels) if label is not None]
    truth = np.array([labels[i] for i in picked], dtype=int)
    metric_ref = metric_exp = delta = None
    if picked:
        metric_ref = finite(auroc(ref_scores[picked], truth))
        metric_exp = finite(auroc(cand_scores[picked], truth))
        if metric_ref is not None and metric_exp is not None:
            delta = metric_exp - metric_ref
    checks: list[dict[str, Any]] = []
    if fmt in RELATIVE:
        checks.append(check("score_diff_relative", score_diff / scale, "<=", RELATIVE[fmt]))
        checks.append(check("map_diff_relative", map_diff / scale, "<=", MAP_RELATIVE))
    else:
        checks.append(check("verdict_agreement", agreement, ">=", MIN_AGREEMENT))
    if delta is not None:
        limit = AUROC_CHANGE[fmt]
        change = -delta if fmt == "onnx_int8" else abs(delta)
        checks.append(check("auroc_change", change, "<=", limit))
    return {
        "valid": all(c["passed"] for c in checks),
        "samples": len(reference),
        "labelled": len(picked),
        "measures": [
            {"key": "max_score_diff", "title": "Max |Δ score|", "value": score_diff, "digits": 3},
            {"key": "max_map_diff", "title": "Max |Δ map|", "value": map_diff, "digits": 3},
            {"key": "score_range", "title": "Score scale (validation range)", "value": scale},
            {
                "key": "verdict_agreement",
                "title": "Verdict agreement",
                "value": agreement * 100,
                "percent": True,
            },
        ],
        "max_abs_diff": max(score_diff, map_diff),
        "metric": "auroc",
        "metric_checkpoint": metric_ref,
        "metric_export": metric_exp,
        "metric_delta": delta,
        "checks": checks,
        "tolerances": tolerances,
    }
