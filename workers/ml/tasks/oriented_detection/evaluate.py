"""Oriented-detection evaluation: DOTA mAP over every detection (metrics.py), and per image
TP / FP / FN at rotated IoU 0.5 among detections scoring at least the score threshold.

Per image as detection: the matcher is detection's (matching.greedy_match) fed with the rotated
IoU matrix; difficult boxes match nothing and count for nothing; a box of the wrong class is
one FP and one FN; match rows feed the shared confusion matrix with its background row and
column. Rows carry the boxes as obb annotations (degrees, le90, original pixels) so the
shared overlay draws them rotated.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from workers.ml.checkpoints import preprocess
from workers.ml.data import load_image
from workers.ml.tasks.base import EvalOutcome, InferenceModel, Report, Sample
from workers.ml.tasks.detection.evaluate import (
    object_aggregate,
    object_result,
    score_threshold,
)
from workers.ml.tasks.oriented_detection.data import obb_targets
from workers.ml.tasks.oriented_detection.decode import obb_dict, to_original
from workers.ml.tasks.oriented_detection.geometry import rotated_iou
from workers.ml.tasks.oriented_detection.metrics import OrientedMAP
from workers.ml.tasks.oriented_detection.module import detections


@torch.inference_mode()
def detect(
    model: InferenceModel, samples: list[Sample], batch_size: int, report: Report | None = None
) -> list[dict[str, np.ndarray]]:
    """Detections per sample in original-image pixels: obb (le90, degrees), scores, labels."""
    config = {**(model.provenance.get("config") or {}), "score_threshold": 0.05}
    out: list[dict[str, np.ndarray]] = []
    for start in range(0, len(samples), batch_size):
        chunk = samples[start : start + batch_size]
        pictures = [load_image(s.path) for s in chunk]
        batch = torch.stack([preprocess(p, model) for p in pictures]).to(model.device)
        for picture, found in zip(pictures, detections(model.model(batch), config), strict=True):
            found["obb"] = to_original(found["obb"], float(model.image_size), picture.size)
            out.append(found)
        if report is not None:
            report(min(start + batch_size, len(samples)), len(samples))
    return out


def truth_arrays(truth: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(obb in degrees, labels, difficult) of a target, difficult boxes last."""
    boxes = np.array(truth["obb"] + truth["ignore_obb"], np.float64).reshape(-1, 5)
    boxes[:, 4] = np.degrees(boxes[:, 4])
    labels = np.array(truth["labels"] + truth["ignore_labels"], np.int64)
    hard = np.array([False] * len(truth["obb"]) + [True] * len(truth["ignore_obb"]))
    return boxes, labels, hard


def image_result(
    found: dict[str, np.ndarray], truth: dict[str, Any], classes: list[str], threshold: float
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, int]]:
    """One image's row fields, match rows and TP/FP/FN counts (detection's rule, rotated IoU)."""
    keep = found["scores"] >= threshold
    boxes, scores, labels = found["obb"][keep], found["scores"][keep], found["labels"][keep]
    t_boxes, t_labels, hard = truth_arrays(truth)
    return object_result(
        "obb",
        rotated_iou(boxes, t_boxes),
        ([obb_dict(b) for b in boxes], scores, labels),
        ([obb_dict(b) for b in t_boxes], t_labels, hard),
        classes,
        threshold,
    )


def evaluate(
    model: InferenceModel,
    samples: list[Sample],
    *,
    options: dict[str, Any],
    report: Report | None = None,
) -> EvalOutcome:
    classes = list(model.classes)
    threshold = score_threshold(model)
    found_all = detect(model, samples, int(options.get("batch_size", 16)), report)
    overall = OrientedMAP(len(classes))
    by_subset: dict[str, OrientedMAP] = {}
    totals: dict[str, dict[str, int]] = {}
    rows: list[dict[str, Any]] = []
    matches: list[dict[str, Any]] = []
    dropped = 0
    for sample, found in zip(samples, found_all, strict=True):
        truth, bad = obb_targets(sample, classes)
        dropped += bad
        arrays = truth_arrays(truth)
        overall.update(found["obb"], found["scores"], found["labels"], *arrays)
        subset = sample.subset
        if subset not in by_subset:
            by_subset[subset] = OrientedMAP(len(classes))
            totals[subset] = {"tp": 0, "fp": 0, "fn": 0}
        by_subset[subset].update(found["obb"], found["scores"], found["labels"], *arrays)
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
        overall.compute(classes),
        {k: m.compute(classes) for k, m in by_subset.items()},
        totals,
    )
    return EvalOutcome(
        aggregate=aggregate, rows=rows, matches=matches, skipped={"degenerate_boxes": dropped}
    )
