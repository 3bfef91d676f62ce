"""Instance-segmentation evaluation: COCO mask and box mAP over every instance, and per image
TP / FP / FN at mask IoU 0.5 among instances scoring at least the experiment's score threshold.

Predicted masks are resized to the original image (bilinear probabilities, then ≥ 0.5) and
truth is rasterised there, so IoU is measured in original pixels. Matching is the detection
task's greedy matcher on a mask-IoU matrix (crowd and box-only truth ignored); match rows
carry (true, predicted) class pairs with background for misses and false instances, so the
confusion matrix with its background row and column comes from the same table as detection's.
Rows hold instances as polygons in original pixels: predictions (the largest piece's outline,
with score, verdict and an instance number so the overlay draws each one in its own shade)
and truth (its own polygon, or the outline of its stored mask).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from workers.ml.checkpoints import preprocess
from workers.ml.data import load_image
from workers.ml.tasks.base import EvalOutcome, InferenceModel, Report, Sample
from workers.ml.tasks.detection.evaluate import MATCH_IOU, object_aggregate, score_threshold
from workers.ml.tasks.detection.matching import greedy_match, match_rows, outcomes
from workers.ml.tasks.instance_segmentation import metrics as inst_metrics
from workers.ml.tasks.instance_segmentation.data import instance_targets, masks_of
from workers.ml.tasks.instance_segmentation.decode import MASK_THRESHOLD, mask_rings


def segment(
    model: InferenceModel, samples: list[Sample], batch_size: int, report: Report | None = None
) -> Iterator[dict[str, np.ndarray]]:
    """Instances per sample, one sample at a time (full-size masks of a whole evaluation
    would not fit in memory), in original-image pixels: boxes xyxy, scores, labels
    (1-based), masks [N, H, W] bool."""
    device = next(model.model.parameters()).device
    for start in range(0, len(samples), batch_size):
        chunk = samples[start : start + batch_size]
        pictures = [load_image(s.path) for s in chunk]
        batch = torch.stack([preprocess(p, model) for p in pictures]).to(device)
        with torch.inference_mode():
            results = model.model(list(batch))
        for picture, found in zip(pictures, results, strict=True):
            width, height = picture.size
            scale = np.array([width / model.image_size, height / model.image_size] * 2)
            probs = found["masks"].float()
            if len(probs):
                probs = torch.nn.functional.interpolate(
                    probs, size=(height, width), mode="bilinear", align_corners=False
                )
            yield {
                "boxes": found["boxes"].double().cpu().numpy().reshape(-1, 4) * scale,
                "scores": found["scores"].double().cpu().numpy().reshape(-1),
                "labels": found["labels"].cpu().numpy().reshape(-1),
                "masks": (probs[:, 0] >= MASK_THRESHOLD).cpu().numpy().reshape(-1, height, width),
            }
        if report is not None:
            report(min(start + batch_size, len(samples)), len(samples))


def _truth_geometry(instance: dict[str, Any], mask: np.ndarray) -> tuple[str, dict[str, Any]]:
    if "rings" in instance:
        rings = instance["rings"]
        return "polygon", {"points": rings[0]} if len(rings) == 1 else {"rings": rings}
    rings = mask_rings(mask)
    return "polygon", {"rings": rings}


def image_result(
    found: dict[str, np.ndarray],
    instances: list[dict[str, Any]],
    truth: tuple[np.ndarray, np.ndarray, np.ndarray],
    classes: list[str],
    threshold: float,
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, int]]:
    """One image's row fields, match rows and TP/FP/FN counts."""
    keep = found["scores"] >= threshold
    scores, labels, masks = found["scores"][keep], found["labels"][keep], found["masks"][keep]
    t_masks, t_labels, ignored = truth
    iou = inst_metrics.mask_iou(masks, t_masks, ignored)
    result = greedy_match(iou, labels, scores, t_labels, ignored, MATCH_IOU)
    pred_outcome, truth_outcome = outcomes(result)

    def name(label: int) -> str:
        return classes[label - 1] if 0 < label <= len(classes) else str(label - 1)

    predicted = []
    for number, p in enumerate(np.argsort(-scores, kind="stable")):
        rings = mask_rings(masks[p])
        predicted.append(
            {
                "kind": "polygon",
                "class": name(int(labels[p])),
                "index": int(labels[p]) - 1,
                "score": round(float(scores[p]), 4),
                "geometry": {"rings": rings},
                "verdict": pred_outcome.get(int(p), "ignored"),
                "instance": number,
                "pixels": int(masks[p].sum()),
            }
        )
    truth_rows = []
    for t, instance in enumerate(instances):
        kind, geometry = _truth_geometry(instance, t_masks[t])
        truth_rows.append(
            {
                "kind": kind,
                "class": name(int(t_labels[t])),
                "index": int(t_labels[t]) - 1,
                "geometry": geometry,
                "outcome": "ignored" if ignored[t] else truth_outcome.get(t, "fn"),
                "pixels": int(t_masks[t].sum()),
            }
        )
    matches, counts = match_rows(result, labels, scores, t_labels)
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


def evaluate(
    model: InferenceModel,
    samples: list[Sample],
    *,
    options: dict[str, Any],
    report: Report | None = None,
) -> EvalOutcome:
    classes = list(model.classes)
    threshold = score_threshold(model)
    found_all = segment(model, samples, int(options.get("batch_size", 8)), report)
    overall = inst_metrics.new_metric()
    by_subset_metric: dict[str, Any] = {}
    totals: dict[str, dict[str, int]] = {}
    rows: list[dict[str, Any]] = []
    matches: list[dict[str, Any]] = []
    dropped = 0
    for sample, found in zip(samples, found_all, strict=True):
        instances, bad = instance_targets(sample, classes)
        dropped += bad
        height, width = found["masks"].shape[-2:]
        truth = masks_of(instances, width, height)
        preds = [
            inst_metrics.as_preds(found["boxes"], found["scores"], found["labels"], found["masks"])
        ]
        target = [inst_metrics.as_target(truth[0], truth[1], truth[2].astype(np.int64))]
        overall.update(preds, target)
        subset = sample.subset
        if subset not in by_subset_metric:
            by_subset_metric[subset] = inst_metrics.new_metric(per_class=False)
            totals[subset] = {"tp": 0, "fp": 0, "fn": 0}
        by_subset_metric[subset].update(preds, target)
        row, image_matches, counts = image_result(found, instances, truth, classes, threshold)
        for key, value in counts.items():
            totals[subset][key] += value
        row.update(image_id=sample.image_id, subset=subset)
        rows.append(row)
        matches += [{**m, "image_id": sample.image_id, "subset": subset} for m in image_matches]
    aggregate = object_aggregate(
        len(samples),
        classes,
        threshold,
        inst_metrics.summarise(overall, classes),
        {k: inst_metrics.summarise(m, classes) for k, m in by_subset_metric.items()},
        totals,
    )
    return EvalOutcome(
        aggregate=aggregate,
        rows=rows,
        matches=matches,
        skipped={"degenerate_shapes": dropped},
    )
