"""The parity report: does the exported file compute what the checkpoint computes?

Tolerances (stated in every report):
- fp32 formats (onnx, torchscript): max |output difference| ≤ 1e-4 on every output element.
- onnx_int8: quantization changes outputs by design, so it is judged by its effect: the
  primary metric may drop by at most 1 point (0.01) and top-1 agreement with the checkpoint
  must be ≥ 0.97. Output differences are reported but not judged.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from workers.ml.decoding import get_decoder


@dataclass(frozen=True)
class Tolerances:
    max_abs_diff: float | None = None
    min_top1_agreement: float | None = None
    max_metric_drop: float | None = None


TOLERANCES: dict[str, Tolerances] = {
    "onnx": Tolerances(max_abs_diff=1e-4),
    "torchscript": Tolerances(max_abs_diff=1e-4),
    "onnx_int8": Tolerances(min_top1_agreement=0.97, max_metric_drop=0.01),
}


def _finite(value: float) -> float | None:
    return None if math.isnan(value) or math.isinf(value) else float(value)


def parity_report(
    *,
    fmt: str,
    reference: np.ndarray,
    candidate: np.ndarray,
    targets: list[Any],
    meta: dict[str, Any],
) -> dict[str, Any]:
    """Compare outputs of the checkpoint (reference) and the exported file (candidate) on the
    same preprocessed inputs; `targets` are the true labels of those inputs."""
    tol = TOLERANCES[fmt]
    decoder = get_decoder(meta["task"])
    n = int(reference.shape[0])
    if n == 0:
        return {
            "valid": False,
            "samples": 0,
            "checks": [],
            "reason": "No labelled images were available to compare on.",
            "tolerances": asdict(tol),
        }
    diff = np.abs(reference.astype(np.float64) - candidate.astype(np.float64))
    max_abs, mean_abs = float(diff.max()), float(diff.mean())
    agreement = decoder.agreement(reference, candidate, meta=meta)
    labelled = [i for i, t in enumerate(targets) if t is not None]
    metric_ref = metric_exp = delta = None
    if labelled:
        picked = [targets[i] for i in labelled]
        metric_ref = _finite(decoder.metric(reference[labelled], picked, meta=meta))
        metric_exp = _finite(decoder.metric(candidate[labelled], picked, meta=meta))
        if metric_ref is not None and metric_exp is not None:
            delta = metric_exp - metric_ref
    checks: list[dict[str, Any]] = []
    if tol.max_abs_diff is not None:
        checks.append(_check("max_abs_diff", max_abs, "<=", tol.max_abs_diff))
    if tol.min_top1_agreement is not None:
        checks.append(_check("top1_agreement", agreement, ">=", tol.min_top1_agreement))
    if tol.max_metric_drop is not None:
        drop = None if delta is None else -delta
        checks.append(_check("metric_drop", drop, "<=", tol.max_metric_drop))
    return {
        "valid": all(c["passed"] for c in checks),
        "samples": n,
        "labelled": len(labelled),
        "max_abs_diff": max_abs,
        "mean_abs_diff": mean_abs,
        "top1_agreement": agreement,
        "metric": decoder.primary_metric,
        "metric_checkpoint": metric_ref,
        "metric_export": metric_exp,
        "metric_delta": delta,
        "checks": checks,
        "tolerances": asdict(tol),
    }


def _check(name: str, value: float | None, op: str, limit: float) -> dict[str, Any]:
    passed = False if value is None else value <= limit if op == "<=" else value >= limit
    return {"name": name, "value": value, "op": op, "limit": limit, "passed": passed}
