"""Regression export: the network with its de-normalisation in the graph (output `values` in
target units), and the parity check.

Tolerances (stated in every report): every de-normalised value within 1e-4 x max(1, std) of the
checkpoint's (std: the target's standard deviation on train), and the MAE on labelled images
within 1 % of the mean std (ONNX INT8: 5 %, since quantisation changes outputs by design).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from workers.ml.export.parity import check, empty_report, finite
from workers.ml.tasks.base import ExportModule, InferenceModel, Outputs, Sample
from workers.ml.tasks.regression.decode import sample_values

MAX_REL_DIFF = {"onnx": 1e-4, "torchscript": 1e-4}
MAE_SHARE = {"onnx": 0.01, "torchscript": 0.01, "onnx_int8": 0.05}


class Denormalized(nn.Module):
    """values = network(x) * std + mean, so the file answers in target units."""

    def __init__(self, model: nn.Module, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32)[None, :])
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32)[None, :])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) * self.std + self.mean


def export_module(model: InferenceModel) -> ExportModule:
    names = list(model.info.get("targets") or [])
    mean = list(model.info.get("target_mean") or [0.0] * len(names))
    std = list(model.info.get("target_std") or [1.0] * len(names))
    return ExportModule(
        module=Denormalized(model.model, mean, std),
        output_names=["values"],
        postprocess={
            "denormalization": "in the graph: values = network output * target_std + "
            "target_mean (target units; target_mean/target_std in this metadata are for "
            "reference only)",
            "targets": names,
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
    names = list(meta.get("targets") or [])
    std = np.asarray(meta.get("target_std") or [1.0] * len(names), np.float64)
    scale = np.maximum(1.0, np.abs(std))
    if not reference:
        return empty_report({"max_rel_diff": MAX_REL_DIFF.get(fmt), "mae_share": MAE_SHARE[fmt]})
    ref = np.stack([np.asarray(o["values"], np.float64) for o in reference])
    cand = np.stack([np.asarray(o["values"], np.float64) for o in candidate])
    diff = np.abs(ref - cand)
    largest = float(diff.max()) if diff.size else 0.0
    relative = float((diff / scale[None, :]).max()) if diff.size else 0.0
    labelled = [(i, found[1]) for i, s in enumerate(samples) if (found := sample_values(s))]
    labelled = [(i, v) for i, v in labelled if len(v) == len(names)]
    metric_ref = metric_exp = delta = None
    if labelled:
        rows = [i for i, _ in labelled]
        truth = np.asarray([v for _, v in labelled], np.float64)
        metric_ref = finite(float(np.mean(np.abs(ref[rows] - truth))))
        metric_exp = finite(float(np.mean(np.abs(cand[rows] - truth))))
        if metric_ref is not None and metric_exp is not None:
            delta = metric_exp - metric_ref
    limit = MAE_SHARE[fmt] * float(np.mean(np.abs(std))) if len(std) else 0.0
    checks = []
    if fmt in MAX_REL_DIFF:
        checks.append(check("max_rel_diff", relative, "<=", MAX_REL_DIFF[fmt]))
    checks.append(check("mae_change", None if delta is None else abs(delta), "<=", limit))
    return {
        "valid": all(c["passed"] for c in checks),
        "samples": len(reference),
        "labelled": len(labelled),
        "measures": [
            {"key": "max_abs_diff", "title": "Max |Δ value| (target units)", "value": largest},
            {"key": "max_rel_diff", "title": "Max |Δ| / max(1, std)", "value": relative},
        ],
        "max_abs_diff": largest,
        "max_rel_diff": relative,
        "metric": "mae",
        "metric_checkpoint": metric_ref,
        "metric_export": metric_exp,
        "metric_delta": delta,
        "checks": checks,
        "tolerances": {"max_rel_diff": MAX_REL_DIFF.get(fmt), "mae_change": limit},
    }
