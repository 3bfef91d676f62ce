"""The segmentation gate (seed plan §10): decide from the predicted channel masks whether an
image is in the domain at all, before its class scores mean anything. Numpy only: the
predictor, the evaluation and examples/predict_onnx.py share it.

Decision, in order: foreground ratio (share of pixels in any channel) below the predicted
class's minimum (calibrated, else the default 0.15) → reject "insufficient foreground"; the
largest connected foreground component below the minimum area (500 px² at 224 px, scaled
with the square of the input side) → reject "no coherent object"; no channel fires → reject;
else pass. Rules are plain data (stored with the evaluation, carried in export metadata)."""

from __future__ import annotations

from typing import Any

import numpy as np

from workers.ml.tasks.classification.dual_head.metrics import fired

DEFAULT_RULES: dict[str, Any] = {
    "default_min_ratio": 0.15,
    "min_ratio": {},  # class → calibrated minimum foreground ratio
    "min_component_px": 500.0,
    "reference_side": 224,
    "min_calibration_images": 5,
}


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


def rules_of(rules: dict[str, Any] | None) -> dict[str, Any]:
    return {**DEFAULT_RULES, **(rules or {})}


def verdict(
    measures: dict[str, Any], rules: dict[str, Any] | None, predicted: str | None
) -> dict[str, Any]:
    rules = rules_of(rules)
    ratio = float(measures["foreground_ratio"])
    threshold = float(rules["min_ratio"].get(predicted or "", rules["default_min_ratio"]))
    side = float(measures.get("side") or rules["reference_side"])
    min_area = float(rules["min_component_px"]) * (side / float(rules["reference_side"])) ** 2
    out = {
        "passed": False,
        "foreground_ratio": ratio,
        "largest_component": int(measures["largest_component"]),
        "threshold": threshold,
        "min_component": min_area,
    }
    if ratio < threshold:
        out["reason"] = f"insufficient foreground ({ratio:.0%} < {threshold:.0%})"
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
    ratios: dict[str, list[float]], rules: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Per-class minimum ratio = 5th percentile of the class's ratios (classes with enough
    images), and the calibration report (5th/25th/50th percentiles per class)."""
    rules = rules_of(rules)
    per_class: dict[str, Any] = {}
    minimum: dict[str, float] = {}
    for name, values in sorted(ratios.items()):
        if not values:
            continue
        p5, p25, p50 = (float(np.percentile(values, q)) for q in (5, 25, 50))
        per_class[name] = {"images": len(values), "p5": p5, "p25": p25, "p50": p50}
        if len(values) >= int(rules["min_calibration_images"]):
            minimum[name] = p5
    return {"rules": {**rules, "min_ratio": minimum}, "calibration": {"per_class": per_class}}
