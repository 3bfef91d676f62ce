"""Detection evaluation: COCO mAP over every detection, and per image TP / FP / FN at IoU 0.5
among detections scoring at least the experiment's score threshold.

Per image: the error is FP + FN (a box of the wrong class counts as both), `correct` means no
error, the score is the best detection's. Match rows carry (true, predicted) class pairs with
IoU and score — background (None) for a missed or a false box — so the detection confusion
matrix, with its background row and column, comes from the same table as classification's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from workers.ml.checkpoints import preprocess
from workers.ml.data import load_image
from workers.ml.tasks.base import EvalOutcome, InferenceModel, Report, Sample
from workers.ml.tasks.detection import metrics as det_metrics
from workers.ml.tasks.detection.data import box_targets
from workers.ml.tasks.detection.matching import box_iou, greedy_match, match_rows, outcomes

MATCH_IOU = 0.5


def score_threshold(model: InferenceModel) -> float:
    return float((model.provenance.get("config") or {}).get("score_threshold", 0.25))


@torch.inference_mode()
def detect(
    model: InferenceModel, samples: list[Sample], batch_size: int, report: Report | None = None
) -> list[dict[str, np.ndarray]]:
    """Detections per sample in original-image pixels: boxes xyxy, scores, labels (1-based)."""
    out: list[dict[str, np.ndarray]] = []
    device = next(model.model.parameters()).device
    for start in range(0, len(samples), batch_size):
        chunk = samples[start : start + batch_size]
        pictures = [load_image(s.path) for s in chunk]
        batch = torch.stack([preprocess(p, model) for p in pictures]).to(device)
        for picture, found in zip(pictures, model.model(list(batch)), strict=True):
            width, height = picture.size
            scale = np.array([width / model.image_size, height / model.image_size] * 2, np.float64)
            out.append(
                {
                    "boxes": found["boxes"].double().cpu().numpy().reshape(-1, 4) * scale,
                    "scores": found["scores"].double().cpu().numpy().reshape(-1),
                    "labels": found["labels"].cpu().numpy().reshape(-1),
                }
            )
        if report is not None:
            report(min(start + batch_size, len(samples)), len(samples))
    return out


def _box(xyxy: np.ndarray) -> dict[str, float]:
    x0, y0, x1, y1 = (float(v) for v in xyxy)
    return {"x": round(x0, 2), "y": round(y0, 2), "w": round(x1 - x0, 2), "h": round(y1 - y0, 2)}


def image_result(
    found: dict[str, np.ndarray],
    truth: dict[str, Any],
    classes: list[str],
    threshold: float,
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, int]]:
    """One image's row fields, match rows and TP/FP/FN counts."""
    keep = found["scores"] >= threshold
    boxes, scores, labels = found["boxes"][keep], found["scores"][keep], found["labels"][keep]
    t_boxes = np.array(truth["boxes"] + truth["ignore_boxes"], np.float64).reshape(-1, 4)
    t_labels = np.array(truth["labels"] + truth["ignore_labels"], np.int64)
    ignored = np.array([False] * len(truth["boxes"]) + [True] * len(truth["ignore_boxes"]))
    return object_result(
        "bbox",
        box_iou(boxes, t_boxes),
        ([_box(b) for b in boxes], scores, labels - 1),
        ([_box(b) for b in t_boxes], t_labels - 1, ignored),
        classes,
        threshold,
    )


def object_result(
    kind: str,
    iou: np.ndarray,
    predictions: tuple[list[dict[str, Any]], np.ndarray, np.ndarray],
    truth: tuple[list[dict[str, Any]], np.ndarray, np.ndarray],
    classes: list[str],
    threshold: float,
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, int]]:
    """One image's row fields, match rows and TP/FP/FN counts for any object task: the
    predictions (geometries, scores, 0-based labels) above the threshold, the truth
    (geometries, 0-based labels, ignored flags) and their IoU matrix [P, T]."""
    geometry, scores, labels = predictions
    t_geometry, t_labels, ignored = truth
    result = greedy_match(iou, labels, scores, t_labels, ignored, MATCH_IOU)
    pred_outcome, truth_outcome = outcomes(result)

    def name(label: int) -> str:
        return classes[label] if 0 <= label < len(classes) else str(label)

    predicted = [
        {
            "kind": kind,
            "class": name(int(labels[p])),
            "index": int(labels[p]),
            "score": round(float(scores[p]), 4),
            "geometry": geometry[p],
            "outcome": pred_outcome.get(p, "ignored"),
        }
        for p in np.argsort(-scores, kind="stable")
    ]
    truth_rows = [
        {
            "kind": kind,
            "class": name(int(t_labels[t])),
            "index": int(t_labels[t]),
            "geometry": t_geometry[t],
            "outcome": "ignored" if ignored[t] else truth_outcome.get(t, "fn"),
        }
        for t in range(len(t_geometry))
    ]
    matches, counts = match_rows(result, labels + 1, scores, t_labels + 1)  # 1-based
    row = {
        "prediction": {
            "truth": truth_rows,
            "predicted": predicted,
            "counts": counts,
            "threshold": threshold,
        },
        "score": float(scores.max()) if len(scores) else None,
        "loss": None,
        "error": float(result.errors),
        "correct": result.errors == 0,
    }
    return row, matches, counts


def shares(tp: int, fp: int, fn: int) -> dict[str, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def evaluate(
    model: InferenceModel,
    samples: list[Sample],
    *,
    options: dict[str, Any],
    report: Report | None = None,
) -> EvalOutcome:
    classes = list(model.classes)
    threshold = score_threshold(model)
    detections = detect(model, samples, int(options.get("batch_size", 16)), report)
    overall = det_metrics.new_metric()
    by_subset_metric: dict[str, Any] = {}
    totals: dict[str, dict[str, int]] = {}
    rows: list[dict[str, Any]] = []
    matches: list[dict[str, Any]] = []
    dropped = 0
    for sample, found in zip(samples, detections, strict=True):
        truth, bad = box_targets(sample, classes)
        dropped += bad
        preds = [det_metrics.as_preds(found["boxes"], found["scores"], found["labels"])]
        target = [
            det_metrics.as_target(
                np.array(truth["boxes"] + truth["ignore_boxes"]),
                np.array(truth["labels"] + truth["ignore_labels"]),
                np.array([0] * len(truth["boxes"]) + [1] * len(truth["ignore_boxes"])),
            )
        ]
        overall.update(preds, target)
        subset = sample.subset
        if subset not in by_subset_metric:
            by_subset_metric[subset] = det_metrics.new_metric(per_class=False)
            totals[subset] = {"tp": 0, "fp": 0, "fn": 0}
        by_subset_metric[subset].update(preds, target)
        row, image_matches, counts = image_result(found, truth, classes, threshold)
        for key, value in counts.items():
            totals[subset][key] += value
        row.update(image_id=sample.image_id, subset=subset)
        rows.append(row)
        matches += [{**m, "image_id": sample.image_id, "subset": subset} for m in image_matches]
    aggregate = object_aggregate(
        len(samples),
        classes,
        threshold,
        det_metrics.summarise(overall, classes),
        {k: det_metrics.summarise(m, classes) for k, m in by_subset_metric.items()},
        totals,
    )
    return EvalOutcome(
        aggregate=aggregate,
        rows=rows,
        matches=matches,
        skipped={"degenerate_boxes": dropped},
    )


def object_aggregate(
    samples: int,
    classes: list[str],
    threshold: float,
    overall: dict[str, Any],
    by_subset: dict[str, dict[str, Any]],
    totals: dict[str, dict[str, int]],
) -> dict[str, Any]:
    """An object task's aggregate: its mAP summary overall and per subset, with TP/FP/FN
    counts and precision/recall/F1 at the score threshold."""
    aggregate: dict[str, Any] = {
        "samples": samples,
        "classes": classes,
        "score_threshold": threshold,
        "match_iou": MATCH_IOU,
        **overall,
    }
    grand = {k: sum(t[k] for t in totals.values()) for k in ("tp", "fp", "fn")}
    aggregate.update(shares(**grand), counts=grand)
    aggregate["by_subset"] = {
        subset: {
            **{k: v for k, v in summary.items() if k not in ("per_class", "pr_curves")},
            **shares(**totals[subset]),
            "counts": totals[subset],
        }
        for subset, summary in by_subset.items()
    }
    return aggregate
