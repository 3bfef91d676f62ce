"""Run a trained regressor over images: de-normalised predictions, per-target metrics, one
row per image (truth and prediction as value annotations, absolute errors) and chart data.

A row's `error` is the absolute error of its single target, or with several targets the mean
of each target's absolute error divided by that target's standard deviation on train (so no
target dominates the sort by its units). There are no classes, so no match rows: the
confusion-matrix card shows its empty state. `correct` stays empty (no verdict).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from workers.ml.checkpoints import preprocess
from workers.ml.data import load_image
from workers.ml.tasks.base import EvalOutcome, InferenceModel, Report, Sample
from workers.ml.tasks.regression.decode import sample_values
from workers.ml.tasks.regression.metrics import denormalize, regression_metrics

MAX_POINTS = 2000  # scatter points per target kept for the page (every image up to this)
HISTOGRAM_BINS = 30


def predict_values(
    model: InferenceModel, samples: list[Sample], batch_size: int, report: Report | None
) -> np.ndarray:
    """De-normalised predictions [N, T] for the samples' images."""
    out: list[np.ndarray] = []
    with torch.inference_mode():
        for start in range(0, len(samples), batch_size):
            batch = samples[start : start + batch_size]
            x = torch.stack([preprocess(load_image(s.path), model) for s in batch])
            out.append(model.model(x.to(model.device)).float().cpu().numpy())
            if report is not None:
                report(min(start + batch_size, len(samples)), len(samples))
    targets = len(model.info.get("targets") or [])
    z = np.concatenate(out) if out else np.zeros((0, targets), np.float32)
    return denormalize(z, model.info)


def _histogram(values: np.ndarray) -> dict[str, Any]:
    if not len(values):
        return {"edges": [], "counts": []}
    high = float(values.max()) or 1.0
    counts, edges = np.histogram(values, bins=HISTOGRAM_BINS, range=(0.0, high))
    return {"edges": [round(float(e), 6) for e in edges], "counts": counts.tolist()}


def chart_data(pred: np.ndarray, true: np.ndarray, names: list[str]) -> dict[str, Any]:
    """Scatter points per target (evenly thinned past MAX_POINTS) and |error| histograms."""
    keep = np.linspace(0, len(true) - 1, min(len(true), MAX_POINTS)).round().astype(int)
    return {
        "targets": [
            {
                "name": name,
                "actual": [round(float(v), 6) for v in true[keep, t]],
                "predicted": [round(float(v), 6) for v in pred[keep, t]],
                "abs_error_histogram": _histogram(np.abs(pred[:, t] - true[:, t])),
            }
            for t, name in enumerate(names)
        ],
        "points": len(keep),
        "images": len(true),
    }


def evaluate(
    model: InferenceModel,
    samples: list[Sample],
    *,
    options: dict[str, Any],
    report: Report | None = None,
) -> EvalOutcome:
    names = list(model.info.get("targets") or [])
    kept: list[Sample] = []
    truth: list[list[float]] = []
    skipped = {"no_targets": 0}
    for sample in samples:
        found = sample_values(sample)
        if found is None or len(found[1]) != len(names):
            skipped["no_targets"] += 1
            continue
        kept.append(sample)
        truth.append(found[1])
    if not kept:
        return EvalOutcome(aggregate={"samples": 0}, rows=[], skipped=skipped)
    pred = predict_values(model, kept, int(options.get("batch_size", 64)), report)
    true = np.asarray(truth, dtype=np.float64)
    std = np.asarray(model.info.get("target_std") or [1.0] * len(names), np.float64)
    aggregate = regression_metrics(pred, true, names)
    subsets = [s.subset for s in kept]
    aggregate["by_subset"] = {}
    for name in dict.fromkeys(subsets):
        picked = [i for i, s in enumerate(subsets) if s == name]
        part = regression_metrics(pred[picked], true[picked], names)
        aggregate["by_subset"][name] = {k: v for k, v in part.items() if k != "per_target"}
    aggregate["targets"] = names
    aggregate["classes"] = []
    aggregate["charts"] = chart_data(pred, true, names)
    aggregate["normalization"] = {
        "mean": model.info.get("target_mean"),
        "std": model.info.get("target_std"),
    }
    abs_err = np.abs(pred - true)
    z_err = (pred - true) / std[None, :]
    rows = []
    for i, sample in enumerate(kept):
        error = float(abs_err[i, 0]) if len(names) == 1 else float(np.mean(np.abs(z_err[i])))
        rows.append(
            {
                "image_id": sample.image_id,
                "subset": sample.subset,
                "prediction": {
                    "truth": [{"kind": "value", "names": names, "values": true[i].tolist()}],
                    "predicted": [
                        {"kind": "value", "names": names, "values": pred[i].round(6).tolist()}
                    ],
                    "abs_errors": abs_err[i].round(6).tolist(),
                },
                "score": None,
                "loss": float(np.mean(z_err[i] ** 2)),
                "error": error,
                "correct": None,
            }
        )
    arrays = {
        "image_ids": np.array([s.image_id for s in kept]),
        "subsets": np.array(subsets),
        "predicted": pred,
        "actual": true,
    }
    return EvalOutcome(aggregate=aggregate, rows=rows, arrays=arrays, skipped=skipped)
