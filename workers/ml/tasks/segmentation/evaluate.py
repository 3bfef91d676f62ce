"""Run a segmentation checkpoint over images and score it at each image's original size.

Each image goes through the shared eval transform; the class probabilities (averaged over
the test-time views) are resized bilinearly to the original size — the same reading the
predictor and the export use — and the argmax is compared with the stored mask.

Stored per image: an evaluation row (score = the image's mIoU over the classes in its truth
or prediction, error = share of misclassified valid pixels, loss = mean cross-entropy,
correct = image mIoU ≥ 0.5), match rows for every non-empty cell of the image's pixel
confusion matrix (true and predicted class, score = pixels, iou = the class IoU on the
diagonal), so a cell of the dataset's pixel confusion matrix opens the images where that
confusion is largest, and three 8-bit index PNGs as artefacts: `pred-<image>.png` (the
predicted mask), `truth-<image>.png` (the mask as evaluated, in model class order) and
`err-<image>.png` (the true class where the prediction is wrong, 255 elsewhere).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from workers.ml.checkpoints import preprocess
from workers.ml.data import load_image
from workers.ml.tasks.base import EvalOutcome, InferenceModel, Report, Sample
from workers.ml.tasks.segmentation.data import MaskTarget, load_mask, mask_target
from workers.ml.tasks.segmentation.decode import (
    IGNORE,
    background_of,
    confusion,
    per_class,
    resize_logits,
    scores,
)
from workers.ml.tasks.segmentation.metrics import PixelMetrics

GOOD_IMAGE_MIOU = 0.5  # an image counts as correct from this per-image mIoU on
MULTISCALE_FACTORS = (0.75, 1.0, 1.25)
EPS = 1e-7


def views(model: InferenceModel, tta: list[str]) -> list[tuple[int, bool]]:
    """(input side, mirrored) per test-time view; the plain eval transform comes first."""
    sizes = [model.image_size]
    if "multiscale" in tta:
        sizes += [max(16, round(model.image_size * f)) for f in MULTISCALE_FACTORS if f != 1.0]
    flips = [False, True] if "hflip" in tta else [False]
    return [(size, flip) for size in sizes for flip in flips]


def probabilities(
    model: InferenceModel, pictures: list[Image.Image], chosen: list[tuple[int, bool]]
) -> np.ndarray:
    """Softmax [N, C, S, S] at the model's size, averaged over the views."""
    from dataclasses import replace

    import torch.nn.functional as F  # noqa: N812

    device = next(model.model.parameters()).device
    side = model.image_size
    total: torch.Tensor | None = None
    for size, flip in chosen:
        sized = replace(model, image_size=size)
        x = torch.stack([preprocess(p, sized) for p in pictures]).to(device)
        if flip:
            x = torch.flip(x, dims=[3])
        probs = model.model(x).float().softmax(dim=1)
        if flip:
            probs = torch.flip(probs, dims=[3])
        if size != side:
            probs = F.interpolate(probs, size=(side, side), mode="bilinear", align_corners=False)
        total = probs if total is None else total + probs
    assert total is not None
    return (total / len(chosen)).cpu().numpy()  # type: ignore[no-any-return]


def _png(path: Path, mask: np.ndarray) -> None:
    Image.fromarray(np.ascontiguousarray(mask, dtype=np.uint8)).save(path, compress_level=6)


def image_result(
    cm: np.ndarray, classes: list[str], loss: float
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One image's row fields and its match rows from its pixel confusion matrix."""
    valid = int(cm.sum())
    parts = per_class(cm)
    iou = parts["iou"]
    present = ~np.isnan(iou)
    image_miou = float(iou[present].mean()) if present.any() else None
    accuracy = float(np.trace(cm) / valid) if valid else None
    matches = [
        {
            "true_class": int(t),
            "predicted_class": int(p),
            "score": float(cm[t, p]),
            "iou": float(iou[t]) if t == p and not np.isnan(iou[t]) else None,
        }
        for t, p in zip(*np.nonzero(cm), strict=True)
    ]
    row = {
        "score": image_miou,
        "error": None if accuracy is None else 1.0 - accuracy,
        "loss": loss,
        "correct": image_miou is not None and image_miou >= GOOD_IMAGE_MIOU,
        "pixel_accuracy": accuracy,
        "per_class_iou": {classes[i]: float(iou[i]) for i in np.flatnonzero(present)},
    }
    return row, matches


def _entries(
    counts: np.ndarray, classes: list[str], geometry: dict[str, Any], iou: np.ndarray | None
) -> list[dict[str, Any]]:
    total = int(counts.sum()) or 1
    out = []
    for i in np.flatnonzero(counts):
        entry: dict[str, Any] = {
            "kind": "mask",
            "class": classes[i],
            "index": int(i),
            "geometry": {**geometry, "index": int(i)},
            "pixels": int(counts[i]),
            "fraction": round(float(counts[i]) / total, 6),
        }
        if iou is not None and not np.isnan(iou[i]):
            entry["iou"] = round(float(iou[i]), 6)
        out.append(entry)
    return out


def evaluate(
    model: InferenceModel,
    samples: list[Sample],
    *,
    options: dict[str, Any],
    report: Report | None = None,
) -> EvalOutcome:
    classes = list(model.classes)
    count = len(classes)
    background = model.info.get("background", background_of(classes))
    scored: list[tuple[Sample, MaskTarget]] = []
    skipped = {"no_mask": 0}
    for sample in samples:
        target = mask_target(sample, classes, background)
        if target is None:
            skipped["no_mask"] += 1
        else:
            scored.append((sample, target))
    if not scored:
        return EvalOutcome(aggregate={"samples": 0}, rows=[], skipped=skipped)
    folder = Path(options["artefact_dir"]) if options.get("artefact_dir") else None
    chosen = views(model, list(options.get("tta", [])))
    batch_size = max(1, int(options.get("batch_size", 16)))
    metrics = PixelMetrics(count, background)
    by_subset: dict[str, np.ndarray] = {}
    rows: list[dict[str, Any]] = []
    matches: list[dict[str, Any]] = []
    files: list[str] = []
    losses: list[float] = []
    all_empty = 0
    with torch.inference_mode():
        for start in range(0, len(scored), batch_size):
            chunk = scored[start : start + batch_size]
            pictures = [load_image(sample.path) for sample, _ in chunk]
            probs = probabilities(model, pictures, chosen)
            for (sample, target), picture, prob in zip(chunk, pictures, probs, strict=True):
                width, height = picture.size
                truth = load_mask(target, width, height)
                full = resize_logits(prob, (width, height))
                pred = full.argmax(axis=0).astype(np.uint8)
                valid = truth != IGNORE
                if not valid.any():
                    all_empty += 1
                picked = np.take_along_axis(
                    full, np.where(valid, truth, 0)[None].astype(np.int64), axis=0
                )[0]
                loss = (
                    float(-np.log(np.clip(picked[valid], EPS, 1.0)).mean()) if valid.any() else 0.0
                )
                cm = confusion(truth, pred, count)
                metrics.update(pred, truth)
                by_subset[sample.subset] = by_subset.get(sample.subset, 0) + cm
                fields, pairs = image_result(cm, classes, loss)
                losses.append(loss)
                names = {role: f"{role}-{sample.image_id}.png" for role in ("pred", "truth", "err")}
                if folder is not None:
                    error = np.where(valid & (pred != truth), truth, IGNORE)
                    for role, mask in (("pred", pred), ("truth", truth), ("err", error)):
                        _png(folder / names[role], mask)
                        files.append(names[role])
                iou = per_class(cm)["iou"]
                truth_counts = np.bincount(truth[valid], minlength=count)[:count]
                pred_counts = np.bincount(pred.reshape(-1), minlength=count)[:count]
                prediction = {
                    "truth": _entries(truth_counts, classes, {}, None),
                    "predicted": _entries(
                        pred_counts, classes, {"artefact": names["pred"]} if folder else {}, iou
                    ),
                    "pixel_accuracy": fields.pop("pixel_accuracy"),
                    "per_class_iou": fields.pop("per_class_iou"),
                    "ignored_pixels": int((~valid).sum()),
                }
                if folder is not None:
                    prediction["artefacts"] = {
                        "predicted": names["pred"],
                        "truth": names["truth"],
                        "error": names["err"],
                    }
                rows.append(
                    {
                        "image_id": sample.image_id,
                        "subset": sample.subset,
                        "prediction": prediction,
                        **fields,
                    }
                )
                matches += [
                    {**m, "image_id": sample.image_id, "subset": sample.subset} for m in pairs
                ]
            if report is not None:
                report(min(start + batch_size, len(scored)), len(scored))
    aggregate = _aggregate(metrics, by_subset, rows, losses, classes, background)
    if model.info.get("hierarchy"):
        from workers.ml.tasks.segmentation.hierarchy_eval import hierarchical_aggregate

        aggregate.update(hierarchical_aggregate(model, scored, aggregate, batch_size))
    aggregate["tta"] = {
        "enabled": len(chosen) > 1,
        "hflip": any(flip for _, flip in chosen),
        "scales": sorted({size for size, _ in chosen}),
        "views": len(chosen),
    }
    if all_empty:
        skipped["all_ignore"] = all_empty
    arrays = {
        "image_ids": np.array([r["image_id"] for r in rows]),
        "image_miou": np.array([np.nan if r["score"] is None else r["score"] for r in rows]),
        "losses": np.array(losses),
        "confusion": np.asarray(metrics.confusion()),
    }
    return EvalOutcome(
        aggregate=aggregate, rows=rows, matches=matches, arrays=arrays, files=files, skipped=skipped
    )


def _summary(cm: np.ndarray, rows: list[dict[str, Any]], background: int | None) -> dict[str, Any]:
    result = scores(cm, background)
    per_image = [r["score"] for r in rows if r["score"] is not None]
    result["image_miou"] = float(np.mean(per_image)) if per_image else None
    losses = [r["loss"] for r in rows if r["loss"] is not None]
    result["loss"] = float(np.mean(losses)) if losses else None
    result["samples"] = len(rows)
    result["confusion"] = {"unit": "pixels", "matrix": cm.astype(int).tolist()}
    return result


def _aggregate(
    metrics: PixelMetrics,
    by_subset: dict[str, np.ndarray],
    rows: list[dict[str, Any]],
    losses: list[float],
    classes: list[str],
    background: int | None,
) -> dict[str, Any]:
    cm = metrics.confusion()
    aggregate = _summary(cm, rows, background)
    aggregate.update(metrics.compute())  # mIoU from torchmetrics' MulticlassJaccardIndex
    parts = per_class(cm)
    truth, pred = cm.sum(axis=1), cm.sum(axis=0)
    aggregate["per_class"] = [
        {
            "class": name,
            "index": i,
            "iou": None if np.isnan(parts["iou"][i]) else float(parts["iou"][i]),
            "dice": None if np.isnan(parts["dice"][i]) else float(parts["dice"][i]),
            "accuracy": None if np.isnan(parts["accuracy"][i]) else float(parts["accuracy"][i]),
            "pixels_truth": int(truth[i]),
            "pixels_predicted": int(pred[i]),
            "background": i == background,
        }
        for i, name in enumerate(classes)
    ]
    # A name, not an index: every number at the top level is recorded as a test metric.
    aggregate["background_class"] = None if background is None else classes[background]
    aggregate["miou_kind"] = (
        "dataset-level: IoU per class over all evaluated pixels (MulticlassJaccardIndex), "
        "then the mean over classes present"
    )
    aggregate["by_subset"] = {
        subset: _summary(matrix, [r for r in rows if r["subset"] == subset], background)
        for subset, matrix in by_subset.items()
    }
    return aggregate
