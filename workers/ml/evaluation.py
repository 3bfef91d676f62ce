"""Run a trained classifier over images and score them: probabilities, losses, metrics.

No database here (DESIGN rule 4): the handler passes paths and targets and a `report`
callable, and stores what comes back.

Test-time augmentation averages the class probabilities of several views of each image:
`hflip` adds the mirrored image; `multiscale` resizes to 0.875x, 1x and 1.125x the model's
input side (the CNNs here pool globally, so they accept other sizes). Without TTA the single
view is exactly the eval transform of training (`preprocess`), so the accuracy equals the
one training recorded for the same checkpoint.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image as PILImage

from workers.ml.checkpoints import InferenceModel, preprocess
from workers.ml.metrics.classification import multiclass_metrics, multilabel_metrics

MULTISCALE_FACTORS = (0.875, 1.0, 1.125)


@dataclass
class EvalItem:
    image_id: int
    path: Path
    target: int | list[int]  # class index, or the indices of the true labels (multi-label)


@dataclass
class EvalOutput:
    probs: torch.Tensor  # [N, C] softmax (multi-class) or sigmoid (multi-label), TTA-averaged
    losses: torch.Tensor  # [N] cross-entropy / mean binary cross-entropy of those probabilities
    targets: torch.Tensor  # [N] indices or [N, C] 0/1
    tta: dict[str, Any]


def tta_views(model: InferenceModel, tta: Sequence[str]) -> list[tuple[int, bool]]:
    """(input side, mirrored) for every view; the first is always the plain eval transform."""
    sizes = [model.image_size]
    if "multiscale" in tta:
        sizes = [max(8, round(model.image_size * f)) for f in MULTISCALE_FACTORS]
        sizes.sort(key=lambda s: s != model.image_size)
    flips = [False, True] if "hflip" in tta else [False]
    return [(size, flip) for size in sizes for flip in flips]


def _load(path: Path) -> PILImage.Image:
    with PILImage.open(path) as image:
        image.load()
        return image.copy()


def predict(
    model: InferenceModel,
    items: Sequence[EvalItem],
    *,
    batch_size: int = 64,
    tta: Sequence[str] = (),
    report: Callable[[int, int], None] | None = None,
) -> EvalOutput:
    views = tta_views(model, tta)
    sized = {size: dataclasses.replace(model, image_size=size) for size, _ in views}
    device = next(model.model.parameters()).device
    num_classes = len(model.classes)
    all_probs: list[torch.Tensor] = []
    total = len(items)
    with torch.inference_mode():
        for start in range(0, total, batch_size):
            batch = items[start : start + batch_size]
            pictures = [_load(item.path) for item in batch]
            summed: torch.Tensor | None = None
            for size, flip in views:
                x = torch.stack([preprocess(p, sized[size]) for p in pictures]).to(device)
                if flip:
                    x = torch.flip(x, dims=[3])
                logits = model.model(x).float()
                probs = torch.sigmoid(logits) if model.multi_label else logits.softmax(dim=1)
                summed = probs if summed is None else summed + probs
            assert summed is not None
            all_probs.append((summed / len(views)).cpu())
            if report is not None:
                report(min(start + batch_size, total), total)
    probs = torch.cat(all_probs) if all_probs else torch.zeros(0, num_classes)
    eps = 1e-7
    if model.multi_label:
        targets = torch.zeros(len(items), num_classes)
        for row, item in enumerate(items):
            labels = item.target if isinstance(item.target, list) else [item.target]
            targets[row, labels] = 1.0
        clipped = probs.double().clamp(eps, 1 - eps)
        losses = -(targets * clipped.log() + (1 - targets) * (1 - clipped).log()).mean(dim=1)
    else:
        targets = torch.tensor([int(item.target) for item in items], dtype=torch.long)  # type: ignore[arg-type]
        picked = probs.double()[torch.arange(len(items)), targets] if len(items) else probs
        losses = -picked.clamp_min(eps).log()
    return EvalOutput(
        probs=probs,
        losses=losses.float(),
        targets=targets,
        tta={
            "enabled": len(views) > 1,
            "hflip": "hflip" in tta,
            "scales": sorted({size for size, _ in views}),
            "views": len(views),
        },
    )


def aggregate_metrics(model: InferenceModel, output: EvalOutput) -> dict[str, Any]:
    if model.multi_label:
        return multilabel_metrics(output.probs, output.targets, model.classes, model.thresholds)
    return multiclass_metrics(output.probs, output.targets, model.classes)


def per_image(model: InferenceModel, output: EvalOutput, index: int) -> dict[str, Any]:
    """One result row's fields: prediction JSON, confidence score, loss, correct, classes."""
    scores = [round(float(v), 6) for v in output.probs[index].tolist()]
    loss = float(output.losses[index])
    if model.multi_label:
        limits = model.thresholds or [0.5] * len(model.classes)
        labels = [c for c, p in enumerate(output.probs[index].tolist()) if p >= limits[c]]
        targets = [int(c) for c in torch.nonzero(output.targets[index]).flatten().tolist()]
        return {
            "prediction": {
                "labels": labels,
                "names": [model.classes[c] for c in labels],
                "targets": targets,
                "target_names": [model.classes[c] for c in targets],
                "scores": scores,
                "thresholds": list(limits),
            },
            "score": max(scores) if scores else None,
            "loss": loss,
            "correct": labels == targets,
            "true_class": None,
            "predicted_class": None,
        }
    label = int(output.probs[index].argmax())
    target = int(output.targets[index])
    return {
        "prediction": {
            "label": label,
            "name": model.classes[label],
            "target": target,
            "target_name": model.classes[target],
            "scores": scores,
        },
        "score": scores[label],
        "loss": loss,
        "correct": label == target,
        "true_class": target,
        "predicted_class": label,
    }
