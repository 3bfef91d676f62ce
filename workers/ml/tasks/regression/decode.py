"""Regression outputs: `values` [N, T] in target units (the export de-normalises in the graph)
→ {"values": {"<target name>": value}}. Numpy only."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from workers.ml.tasks.base import Decoder, Outputs, Sample


def sample_values(sample: Sample) -> tuple[list[str], list[float]] | None:
    """A sample's target names and finite values (its first value annotation), or None."""
    for ann in sample.annotations:
        if ann.kind != "value":
            continue
        raw = ann.geometry.get("values") or []
        try:
            values = [float(v) for v in raw]
        except (TypeError, ValueError):
            return None
        if not values or not all(math.isfinite(v) for v in values):
            return None
        names = [str(n) for n in ann.geometry.get("names") or []]
        if len(names) != len(values):
            names = ["target" if i == 0 else f"target_{i + 1}" for i in range(len(values))]
        return names, values
    return None


class RegressionDecoder(Decoder):
    task = "regression"
    primary_metric = "mae"

    def decode(
        self,
        outputs: Outputs,
        *,
        meta: dict[str, Any],
        size: tuple[int, int],
        options: dict[str, Any],
    ) -> dict[str, Any]:
        values = np.asarray(outputs["values"], dtype=np.float64).reshape(-1)
        names = list(meta.get("targets") or [f"target_{i + 1}" for i in range(len(values))])
        return {"values": {name: float(v) for name, v in zip(names, values, strict=True)}}
