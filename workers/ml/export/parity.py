"""Parity-report pieces every task uses: tolerances, checks, and the empty report.

Each task's `TaskCode.parity` decides what to compare (element-wise outputs, matched boxes,
pixel agreement...) and with which tolerances; the report always carries `valid`, `samples`,
`checks` (name, value, op, limit, passed) and `tolerances`, so pages and the API read every
task's report the same way.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Tolerances:
    max_abs_diff: float | None = None
    min_top1_agreement: float | None = None
    max_metric_drop: float | None = None


def finite(value: float | None) -> float | None:
    if value is None:
        return None
    return None if math.isnan(value) or math.isinf(value) else float(value)


def check(name: str, value: float | None, op: str, limit: float) -> dict[str, Any]:
    passed = False if value is None else value <= limit if op == "<=" else value >= limit
    return {"name": name, "value": value, "op": op, "limit": limit, "passed": passed}


def metric_pair(checkpoint: float | None, export: float | None) -> dict[str, float | None]:
    """The task's metric from the checkpoint's and from the export's outputs on the same
    images, and export minus checkpoint (None where either could not be computed)."""
    ref, exp = finite(checkpoint), finite(export)
    delta = None if ref is None or exp is None else exp - ref
    return {"metric_checkpoint": ref, "metric_export": exp, "metric_delta": delta}


def report(
    tolerances: Any,
    *,
    samples: int,
    checks: list[dict[str, Any]],
    measures: list[dict[str, Any]],
    metric: str,
    metrics: dict[str, float | None],
    **figures: Any,
) -> dict[str, Any]:
    """The report every task returns: valid only when every check passed; `measures` are the
    rows the export page shows, `figures` the task's own keys."""
    return {
        "valid": all(c["passed"] for c in checks),
        "samples": samples,
        "measures": measures,
        **figures,
        "metric": metric,
        **metrics,
        "checks": checks,
        "tolerances": asdict(tolerances),
    }


def empty_report(tolerances: Any) -> dict[str, Any]:
    return {
        "valid": False,
        "samples": 0,
        "checks": [],
        "reason": "No images were available to compare on.",
        "tolerances": asdict(tolerances),
    }


def max_abs_diff(
    reference: list[dict[str, np.ndarray]], candidate: list[dict[str, np.ndarray]]
) -> tuple[float, float]:
    """Largest and mean |difference| over every output element of every image."""
    largest, total, count = 0.0, 0.0, 0
    for ref, cand in zip(reference, candidate, strict=True):
        for name, value in ref.items():
            diff = np.abs(np.asarray(value, np.float64) - np.asarray(cand[name], np.float64))
            if diff.size:
                largest = max(largest, float(diff.max()))
                total += float(diff.sum())
                count += diff.size
    return largest, (total / count if count else 0.0)
