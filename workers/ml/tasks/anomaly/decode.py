"""Anomaly outputs: `score` (per image) and `map` [1, H, W] at the input size → the verdict
and the map as a PNG in the original image's pixels. Numpy and PIL only.

The PNG is greyscale: 0 at the metadata's `map_range` low end (a normal image's typical
value), 255 at its high end; the threshold sits at `threshold_level` on that scale.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
from PIL import Image

from workers.ml.tasks.base import Decoder, Outputs


def threshold_of(meta: dict[str, Any], options: dict[str, Any]) -> float:
    """The threshold in force: a decision setting passed with the request (changed since the
    export), else the one in the file's metadata."""
    value = options.get("threshold", meta.get("threshold"))
    return float(value) if value is not None else float("inf")


def map_levels(anomaly_map: np.ndarray, value_range: list[float]) -> np.ndarray:
    """uint8 levels of a map on its display range."""
    low, high = float(value_range[0]), float(value_range[1])
    scaled = (np.asarray(anomaly_map, np.float64) - low) / max(high - low, 1e-12)
    return (np.clip(scaled, 0, 1) * 255).round().astype(np.uint8)


def png_data_url(levels: np.ndarray, size: tuple[int, int]) -> str:
    """A greyscale PNG of the levels resized (bilinear) to `size` (width, height)."""
    picture = Image.fromarray(levels, mode="L")
    if picture.size != size:
        picture = picture.resize(size, Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


class AnomalyDecoder(Decoder):
    task = "anomaly"
    primary_metric = "auroc"

    def decode(
        self,
        outputs: Outputs,
        *,
        meta: dict[str, Any],
        size: tuple[int, int],
        options: dict[str, Any],
    ) -> dict[str, Any]:
        score = float(np.asarray(outputs["score"]).reshape(-1)[0])
        threshold = threshold_of(meta, options)
        anomaly_map = np.asarray(outputs["map"], np.float64).reshape(np.shape(outputs["map"])[-2:])
        value_range = list(
            meta.get("map_range") or [float(anomaly_map.min()), float(anomaly_map.max())]
        )
        low, high = value_range
        return {
            "score": score,
            "anomalous": bool(score >= threshold),
            "threshold": threshold,
            "map": png_data_url(map_levels(anomaly_map, value_range), size),
            "map_range": [float(low), float(high)],
            "threshold_level": float(np.clip((threshold - low) / max(high - low, 1e-12), 0, 1)),
        }
