"""Detection outputs (boxes xyxy in input pixels, scores, labels) → objects in original pixels.
Numpy only: the predictor and examples/predict_onnx.py use it without torch."""

from __future__ import annotations

from typing import Any

import numpy as np

from workers.ml.tasks.base import Decoder, Outputs


def threshold_of(meta: dict[str, Any], options: dict[str, Any]) -> float:
    value = options.get("score_threshold")
    return float(meta.get("score_threshold", 0.25) if value is None else value)


class DetectionDecoder(Decoder):
    task = "detection"

    def decode(
        self,
        outputs: Outputs,
        *,
        meta: dict[str, Any],
        size: tuple[int, int],
        options: dict[str, Any],
    ) -> dict[str, Any]:
        """{"objects": [{"class", "index", "score", "bbox": {"x", "y", "w", "h"}}]}, best
        first, keeping scores ≥ the request's score_threshold (else the export's)."""
        classes: list[str] = list(meta["classes"])
        side = float(meta["input"]["shape"][-1])
        sx, sy = size[0] / side, size[1] / side
        boxes = np.asarray(outputs["boxes"], np.float64).reshape(-1, 4)
        scores = np.asarray(outputs["scores"], np.float64).reshape(-1)
        labels = np.asarray(outputs["labels"], np.int64).reshape(-1)
        keep = scores >= threshold_of(meta, options)
        objects = []
        for i in np.flatnonzero(keep)[np.argsort(-scores[keep], kind="stable")]:
            x0, y0, x1, y1 = boxes[i] * [sx, sy, sx, sy]
            index = int(labels[i])
            objects.append(
                {
                    "class": classes[index] if 0 <= index < len(classes) else str(index),
                    "index": index,
                    "score": round(float(scores[i]), 4),
                    "bbox": {
                        "x": round(float(x0), 2),
                        "y": round(float(y0), 2),
                        "w": round(float(x1 - x0), 2),
                        "h": round(float(y1 - y0), 2),
                    },
                }
            )
        return {"objects": objects}
