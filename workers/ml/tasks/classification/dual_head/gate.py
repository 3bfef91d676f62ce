"""The segmentation gate (seed plan §10): decide from the predicted channel masks whether an
image is in the domain at all, before its class scores mean anything. Numpy only: the
predictor, the evaluation and examples/predict_onnx.py share it.

Decision, in order:
1. familiarity — the image's embedding (the classification head's input) farther from every
   class's training mean than the calibrated maximum (distance in per-dimension training
   standard deviations, RMS over dimensions) → reject "unfamiliar image". A segmentation
   head trained only on in-domain images answers "tissue" for much that is not a leaf (flat
   colours, noise: the benchmark's out-of-domain set passed the mask rules 39 times in 40);
   the embedding tells such images apart, and the rule is off until an evaluation calibrates
   it (`max_feature_distance` None);
2. foreground ratio (share of pixels in any channel) below the predicted class's minimum
   (calibrated: the 5th percentile on the calibration images minus `ratio_margin`; else the
   default 0.15) → reject "insufficient foreground";
3. foreground ratio above the predicted class's calibrated maximum (the largest seen on the
   calibration images plus `ratio_margin`) → reject "foreground everywhere";
4. the largest connected foreground component below the minimum area (500 px² at 224 px,
   scaled with the square of the input side) → reject "no coherent object";
5. no channel fires → reject; else pass.
Rules are plain data (stored with the evaluation, carried in export metadata)."""

from __future__ import annotations

from typing import Any

import numpy as np

from app.tasks.dual_head import GATE_DEFAULT_RULES as DEFAULT_RULES
from workers.ml.tasks.classification.dual_head.metrics import fired

SCALE_FLOOR = 0.1  # a dimension's scale is at least this share of the median scale


def largest_component(mask: np.ndarray) -> int:
    """Pixels of the largest 4-connected component of a boolean mask."""
    from scipy import ndimage

    labels, count = ndimage.label(mask)
    if not count:
        return 0
    return int(np.bincount(labels.ravel())[1:].max())


def measure(probs: np.ndarray, exclusive: bool, channels: list[str]) -> dict[str, Any]:
    """probs [K, H, W] → foreground ratio, largest component (px at the model's input side)
    and each channel's share of the image."""
    on = fired(probs, exclusive)
    foreground = on.any(axis=0)
    return {
        "foreground_ratio": float(foreground.mean()),
        "largest_component": largest_component(foreground),
        "channels": {name: float(on[k].mean()) for k, name in enumerate(channels)},
        "side": int(probs.shape[-1]),
    }


def feature_reference(embeddings: dict[str, np.ndarray]) -> dict[str, Any] | None:
    """Per-class means and the pooled within-class standard deviation per dimension of
    training embeddings ({class: [n, D]}); None without any."""
    groups = [np.asarray(v, np.float64) for v in embeddings.values() if len(v)]
    if not groups:
        return None
    means = [g.mean(axis=0) for g in groups]
    residual = np.concatenate([g - m for g, m in zip(groups, means, strict=True)])
    scale = np.sqrt((residual**2).mean(axis=0))
    floor = SCALE_FLOOR * float(np.median(scale)) if scale.any() else 1.0
    scale = np.maximum(scale, max(floor, 1e-6))
    return {
        "classes": [name for name, v in embeddings.items() if len(v)],
        "means": [[round(float(x), 5) for x in m] for m in means],
        "scale": [round(float(x), 6) for x in scale],
    }


def feature_distance(embedding: np.ndarray, reference: dict[str, Any] | None) -> float | None:
    """RMS over dimensions of the distance to the nearest class mean, in training standard
    deviations: about 1 for a typical training image."""
    if not reference or embedding is None:
        return None
    means = np.asarray(reference["means"], np.float64)
    scale = np.asarray(reference["scale"], np.float64)
    vector = np.asarray(embedding, np.float64).reshape(-1)
    if means.ndim != 2 or vector.shape[0] != means.shape[1] or scale.shape != vector.shape:
        return None  # an embedding of another model: the rule cannot apply
    z = (vector[None, :] - means) / scale[None, :]
    return float(np.sqrt((z**2).mean(axis=1)).min())


def rules_of(rules: dict[str, Any] | None) -> dict[str, Any]:
    return {**DEFAULT_RULES, **(rules or {})}


def verdict(
    measures: dict[str, Any], rules: dict[str, Any] | None, predicted: str | None
) -> dict[str, Any]:
    rules = rules_of(rules)
    ratio = float(measures["foreground_ratio"])
    threshold = float(rules["min_ratio"].get(predicted or "", rules["default_min_ratio"]))
    ceiling = float((rules.get("max_ratio") or {}).get(predicted or "", 1.0))
    side = float(measures.get("side") or rules["reference_side"])
    min_area = float(rules["min_component_px"]) * (side / float(rules["reference_side"])) ** 2
    distance = measures.get("feature_distance")
    limit = rules.get("max_feature_distance")
    out = {
        "passed": False,
        "foreground_ratio": ratio,
        "largest_component": int(measures["largest_component"]),
        "threshold": threshold,
        "max_ratio": ceiling,
        "min_component": min_area,
        "feature_distance": distance,
        "max_feature_distance": limit,
    }
    if distance is not None and limit is not None and distance > float(limit):
        out["reason"] = (
            f"unfamiliar image (feature distance {distance:.2f} > {float(limit):.2f}: unlike "
            "the training images)"
        )
    elif ratio < threshold:
        out["reason"] = f"insufficient foreground ({ratio:.0%} < {threshold:.0%})"
    elif ratio > ceiling:
        out["reason"] = f"foreground everywhere ({ratio:.0%} > {ceiling:.0%})"
    elif measures["largest_component"] < min_area:
        out["reason"] = (
            f"no coherent object (largest region {measures['largest_component']} px "
            f"< {min_area:.0f} px)"
        )
    elif not any(v > 0 for v in measures["channels"].values()):
        out["reason"] = "no channel fires"
    else:
        out["passed"] = True
        out["reason"] = "foreground found"
    return out


def calibrate(
    ratios: dict[str, list[float]],
    rules: dict[str, Any] | None = None,
    *,
    distances: list[float] | None = None,
    reference: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Per-class minimum ratio = 5th percentile - the margin and maximum = the largest ratio +
    the margin (classes with enough images); the familiarity limit = the calibration images' largest
    feature distance x (1 + feature_margin); and the calibration report (5th/25th/50th/max
    percentiles per class, the feature distances' median and maximum)."""
    rules = rules_of(rules)
    per_class: dict[str, Any] = {}
    minimum: dict[str, float] = {}
    maximum: dict[str, float] = {}
    for name, values in sorted(ratios.items()):
        if not values:
            continue
        p5, p25, p50 = (float(np.percentile(values, q)) for q in (5, 25, 50))
        top = float(max(values))
        per_class[name] = {"images": len(values), "p5": p5, "p25": p25, "p50": p50, "max": top}
        if len(values) >= int(rules["min_calibration_images"]):
            # the margin on both sides: with a handful of calibration images a class's 5th
            # percentile is about its smallest ratio, which 1 in n + 1 new images fall below
            minimum[name] = max(0.0, p5 - float(rules["ratio_margin"]))
            maximum[name] = min(1.0, top + float(rules["ratio_margin"]))
    calibrated = {**rules, "min_ratio": minimum, "max_ratio": maximum}
    report: dict[str, Any] = {"per_class": per_class}
    known = [d for d in distances or [] if d is not None]
    if reference is not None and len(known) >= int(rules["min_calibration_images"]):
        limit = float(max(known)) * (1.0 + float(rules["feature_margin"]))
        calibrated.update({"feature_reference": reference, "max_feature_distance": limit})
        report["feature_distance"] = {
            "images": len(known),
            "p50": float(np.median(known)),
            "max": float(max(known)),
        }
    return {"rules": calibrated, "calibration": report}
