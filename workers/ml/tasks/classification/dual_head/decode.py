"""Reading a dual-head export's outputs (numpy only): the gate first, then the class scores.

`masks` [K, S, S] are per-channel probabilities at the model's input side. The answer carries
`gate` {"passed", "foreground_ratio", "largest_component", "reason", ...}, each channel's share
of the image, a mask PNG for the overlay (value k + 1 = the most probable firing channel k,
0 = none) in original pixels, and the class scores — with no class picked (`labels` empty)
when the gate rejects the image, unless `gate_mode` is "off"."""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from workers.ml.tasks.classification.dual_head import gate
from workers.ml.tasks.classification.dual_head.metrics import fired
from workers.ml.tasks.segmentation.decode import mask_field


def overlay_mask(probs: np.ndarray, on: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    strongest = np.where(on, probs, -1.0).argmax(axis=0) + 1
    index = np.where(on.any(axis=0), strongest, 0).astype(np.uint8)
    picture = Image.fromarray(index).resize(size, Image.Resampling.NEAREST)
    return np.asarray(picture)


def decode_dual(
    classified: dict[str, Any],
    masks: np.ndarray,
    *,
    meta: dict[str, Any],
    size: tuple[int, int],
    options: dict[str, Any],
    embedding: np.ndarray | None = None,
) -> dict[str, Any]:
    """`embedding`: None for an export made before the familiarity rule (the rule is off)."""
    seg = meta["segmentation"]
    channels, exclusive = list(seg["channels"]), bool(seg["exclusive"])
    probs = np.asarray(masks, dtype=np.float64)
    measures = gate.measure(probs, exclusive, channels)
    top = classified["top"][0]["class"] if classified.get("top") else None
    rules = options.get("gate") or meta.get("gate")
    reference = gate.rules_of(rules).get("feature_reference")
    measures["feature_distance"] = (
        gate.feature_distance(np.asarray(embedding), reference) if embedding is not None else None
    )
    decision = gate.verdict(measures, rules, top)
    gated = options.get("gate_mode", "on") != "off"
    decision["applied"] = gated
    mask = overlay_mask(probs, fired(probs, exclusive), size)
    out = {
        **classified,
        "gate": decision,
        "channels": [
            {"channel": name, "index": k + 1, "fraction": measures["channels"][name]}
            for k, name in enumerate(channels)
        ],
        "mask": mask_field(mask, size),
    }
    if gated and not decision["passed"]:
        out["labels"] = []
    return out
