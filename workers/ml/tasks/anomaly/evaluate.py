"""Run an anomaly detector over images and score it.

Per image: the anomaly score, the verdict at the threshold in force (the calibrated one, or a
decision setting changed since), truth and prediction as a label plus a map (evaluation
artefacts: `map-<image>.png`, a heatmap, and `truth-<image>.png`, the defect mask), and the
normal (0) / anomalous (1) match row, so the shared confusion matrix counts the verdicts.
`error` is how far the score sits on the wrong side of the threshold, as a share of the score
range (0 when the verdict is right), so "most wrong" sorts the worst mistakes first.

Aggregate: image AUROC, F1/precision/recall/accuracy at the threshold, and over the images
with a known mask (normal images count as all-normal) pixel AUROC and AUPRO at the model's
input resolution; the ROC curve and the scores of both groups for the page's charts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from workers.ml.checkpoints import preprocess
from workers.ml.data import load_image
from workers.ml.tasks.anomaly.decode import map_levels
from workers.ml.tasks.anomaly.labels import CLASSES, label_of
from workers.ml.tasks.anomaly.metrics import (
    at_threshold,
    aupro,
    auroc,
    pixel_auroc,
    roc_curve,
    thin_curve,
)
from workers.ml.tasks.base import EvalOutcome, InferenceModel, Report, Sample

MAX_SCORES = 5000  # per group, for the histogram and the live threshold on the page
HEAT = (255, 40, 0)
TRUTH = (22, 163, 74, 140)


def run(
    model: InferenceModel, samples: list[Sample], batch_size: int, report: Report | None
) -> tuple[np.ndarray, np.ndarray]:
    """Scores [N] and maps [N, S, S] of the samples' images."""
    scores, maps = [], []
    with torch.inference_mode():
        for start in range(0, len(samples), batch_size):
            batch = samples[start : start + batch_size]
            x = torch.stack([preprocess(load_image(s.path), model) for s in batch])
            score, anomaly_map = model.model(x.to(model.device))
            scores.append(score.float().cpu().numpy())
            maps.append(anomaly_map[:, 0].float().cpu().numpy())
            if report is not None:
                report(min(start + batch_size, len(samples)), len(samples))
    return np.concatenate(scores), np.concatenate(maps)


def heat_png(anomaly_map: np.ndarray, value_range: list[float], path: Path) -> None:
    """An RGBA heatmap: transparent where the map is at a normal level, yellow to red above."""
    level = map_levels(anomaly_map, value_range).astype(np.float64) / 255
    rgba = np.zeros((*anomaly_map.shape, 4), np.uint8)
    rgba[..., 0] = HEAT[0]
    rgba[..., 1] = (220 * (1 - level) + HEAT[1] * level).astype(np.uint8)
    rgba[..., 2] = HEAT[2]
    rgba[..., 3] = (200 * level).astype(np.uint8)
    Image.fromarray(rgba, mode="RGBA").save(path, optimize=True)


def truth_png(mask: np.ndarray, path: Path) -> None:
    rgba = np.zeros((*mask.shape, 4), np.uint8)
    rgba[mask.astype(bool)] = TRUTH
    Image.fromarray(rgba, mode="RGBA").save(path, optimize=True)


def summary(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, Any]:
    counts = at_threshold(scores, labels, threshold)
    return {
        "auroc": auroc(scores, labels),
        "f1": counts["f1"],
        "precision": counts["precision"] if labels.any() else None,
        "recall": counts["recall"],
        "accuracy": counts["accuracy"],
        "false_alarm_rate": counts["fpr"],
        "counts": {k: counts[k] for k in ("tp", "fp", "fn", "tn")},
        "samples": len(labels),
    }


def _thin(values: np.ndarray) -> list[float]:
    if len(values) > MAX_SCORES:
        values = values[np.linspace(0, len(values) - 1, MAX_SCORES).round().astype(int)]
    return [round(float(v), 6) for v in values]


def evaluate(
    model: InferenceModel,
    samples: list[Sample],
    *,
    options: dict[str, Any],
    report: Report | None = None,
) -> EvalOutcome:
    from workers.ml.tasks.anomaly.data import load_mask

    kept = [s for s in samples if label_of(s) is not None]
    skipped = {"unlabeled": len(samples) - len(kept)}
    if not kept:
        return EvalOutcome(aggregate={"samples": 0}, rows=[], skipped=skipped)
    scores, maps = run(model, kept, int(options.get("batch_size", 32)), report)
    labels = np.array([label_of(s) for s in kept], dtype=int)
    size = maps.shape[-1]
    masks = np.zeros(maps.shape, bool)
    known = np.zeros(len(kept), bool)
    for i, sample in enumerate(kept):
        mask, is_known = load_mask(sample, size)
        masks[i], known[i] = mask.astype(bool), is_known
    threshold = float(model.info.get("threshold", np.inf))
    value_range = list(model.info.get("map_range") or [float(maps.min()), float(maps.max())])
    aggregate: dict[str, Any] = summary(scores, labels, threshold)
    aggregate["pixel_auroc"] = aggregate["aupro"] = None
    if known.any() and masks[known].any():
        aggregate["pixel_auroc"] = pixel_auroc(maps[known], masks[known])
        aggregate["aupro"] = aupro(maps[known], masks[known])
    fpr, tpr = roc_curve(scores, labels) if labels.any() and not labels.all() else ([], [])
    subsets = [s.subset for s in kept]
    aggregate.update(
        {
            "threshold": threshold,
            "threshold_rule": model.info.get("threshold_rule"),
            "mode": model.info.get("mode"),
            "method": model.info.get("method") or model.provenance.get("model"),
            "classes": list(CLASSES),
            "masked_images": int((known & (labels == 1)).sum()),
            "roc": thin_curve(np.asarray(fpr), np.asarray(tpr)) if len(fpr) else None,
            "scores": {
                "normal": _thin(scores[labels == 0]),
                "anomalous": _thin(scores[labels == 1]),
            },
            "map_range": value_range,
            "map_resolution": size,
            "by_subset": {
                name: summary(
                    scores[[i for i, s in enumerate(subsets) if s == name]],
                    labels[[i for i, s in enumerate(subsets) if s == name]],
                    threshold,
                )
                for name in dict.fromkeys(subsets)
            },
        }
    )
    folder = Path(str(options["artefact_dir"])) if options.get("artefact_dir") else None
    span = max(float(scores.max() - scores.min()), 1e-12)
    rows, matches, files = [], [], []
    for i, sample in enumerate(kept):
        verdict = int(scores[i] >= threshold)
        truth: list[dict[str, Any]] = [
            {"kind": "label", "class": CLASSES[labels[i]], "index": int(labels[i])}
        ]
        predicted: list[dict[str, Any]] = [
            {
                "kind": "label",
                "class": CLASSES[verdict],
                "index": verdict,
                "score": round(float(scores[i]), 6),
            }
        ]
        if folder is not None:
            heat = f"map-{sample.image_id}.png"
            heat_png(maps[i], value_range, folder / heat)
            files.append(heat)
            predicted.append({"kind": "mask", "artefact": heat, "index": 1})
            if known[i] and masks[i].any():
                name = f"truth-{sample.image_id}.png"
                truth_png(masks[i], folder / name)
                files.append(name)
                truth.append({"kind": "mask", "artefact": name, "index": 1})
        wrong = verdict != labels[i]
        rows.append(
            {
                "image_id": sample.image_id,
                "subset": sample.subset,
                "prediction": {
                    "truth": truth,
                    "predicted": predicted,
                    "threshold": threshold,
                    "has_mask": bool(known[i] and labels[i] == 1),
                },
                "score": float(scores[i]),
                "loss": None,
                "error": abs(float(scores[i]) - threshold) / span if wrong else 0.0,
                "correct": not wrong,
            }
        )
        matches.append(
            {
                "image_id": sample.image_id,
                "subset": sample.subset,
                "true_class": int(labels[i]),
                "predicted_class": verdict,
                "score": float(scores[i]),
            }
        )
    arrays = {
        "image_ids": np.array([s.image_id for s in kept]),
        "subsets": np.array(subsets),
        "scores": scores,
        "labels": labels,
    }
    return EvalOutcome(
        aggregate=aggregate,
        rows=rows,
        matches=matches,
        arrays=arrays,
        files=files,
        skipped=skipped,
    )
