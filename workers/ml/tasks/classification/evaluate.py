"""Run a trained classifier over images and score them: probabilities, losses, metrics, and the
task-neutral rows (one per image) and match rows (true/predicted class pairs).

Test-time augmentation averages the class probabilities of several views of each image:
`hflip` adds the mirrored image; `multiscale` resizes to 0.875x, 1x and 1.125x the model's
input side (the CNNs here pool globally, so they accept other sizes). Without TTA the single
view is exactly the eval transform of training (`preprocess`), so the accuracy equals the
one training recorded for the same checkpoint.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workers.ml.checkpoints import preprocess
from workers.ml.data import load_image
from workers.ml.tasks.base import EvalOutcome, InferenceModel, Report, Sample
from workers.ml.tasks.classification.eval_metrics import multiclass_metrics, multilabel_metrics

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

    def rows(self, picked: list[int]) -> EvalOutput:
        return EvalOutput(
            probs=self.probs[picked],
            losses=self.losses[picked],
            targets=self.targets[picked],
            tta=self.tta,
        )


def multi_label(model: InferenceModel) -> bool:
    return bool(model.info.get("multi_label"))


def thresholds(model: InferenceModel) -> list[float] | None:
    return model.info.get("thresholds")


def tta_views(model: InferenceModel, tta: Sequence[str]) -> list[tuple[int, bool]]:
    """(input side, mirrored) for every view; the first is always the plain eval transform."""
    sizes = [model.image_size]
    if "multiscale" in tta:
        sizes = [max(8, round(model.image_size * f)) for f in MULTISCALE_FACTORS]
        sizes.sort(key=lambda s: s != model.image_size)
    flips = [False, True] if "hflip" in tta else [False]
    return [(size, flip) for size in sizes for flip in flips]


def predict(
    model: InferenceModel,
    items: Sequence[EvalItem],
    *,
    batch_size: int = 64,
    tta: Sequence[str] = (),
    report: Report | None = None,
) -> EvalOutput:
    views = tta_views(model, tta)
    sized = {size: dataclasses.replace(model, image_size=size) for size, _ in views}
    device = next(model.model.parameters()).device
    num_classes = len(model.classes)
    several = multi_label(model)
    all_probs: list[torch.Tensor] = []
    total = len(items)
    with torch.inference_mode():
        for start in range(0, total, batch_size):
            batch = items[start : start + batch_size]
            pictures = [load_image(item.path) for item in batch]
            summed: torch.Tensor | None = None
            for size, flip in views:
                x = torch.stack([preprocess(p, sized[size]) for p in pictures]).to(device)
                if flip:
                    x = torch.flip(x, dims=[3])
                logits = model.model(x).float()
                probs = torch.sigmoid(logits) if several else logits.softmax(dim=1)
                summed = probs if summed is None else summed + probs
            assert summed is not None
            all_probs.append((summed / len(views)).cpu())
            if report is not None:
                report(min(start + batch_size, total), total)
    probs = torch.cat(all_probs) if all_probs else torch.zeros(0, num_classes)
    eps = 1e-7
    if several:
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
    if multi_label(model):
        return multilabel_metrics(output.probs, output.targets, model.classes, thresholds(model))
    return multiclass_metrics(output.probs, output.targets, model.classes)


def _label(model: InferenceModel, index: int, score: float | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"kind": "label", "class": model.classes[index], "index": index}
    if score is not None:
        entry["score"] = round(score, 6)
    return entry


def per_image(model: InferenceModel, output: EvalOutput, index: int) -> dict[str, Any]:
    """One result row and its match rows: prediction JSON, confidence, loss, error, correct."""
    probs = output.probs[index].tolist()
    scores = [round(float(v), 6) for v in probs]
    loss = float(output.losses[index])
    if multi_label(model):
        limits = thresholds(model) or [0.5] * len(model.classes)
        labels = [c for c, p in enumerate(probs) if p >= limits[c]]
        targets = [int(c) for c in torch.nonzero(output.targets[index]).flatten().tolist()]
        wrong = len(set(labels) ^ set(targets))
        matches = [
            {
                "true_class": c if c in targets else None,
                "predicted_class": c if c in labels else None,
                "score": scores[c],
            }
            for c in sorted(set(labels) | set(targets))
        ]
        prediction = {
            "truth": [_label(model, c) for c in targets],
            "predicted": [_label(model, c, probs[c]) for c in labels],
            "scores": scores,
            "thresholds": list(limits),
        }
        return {
            "prediction": prediction,
            "score": max(scores) if scores else None,
            "loss": loss,
            "error": float(wrong),
            "correct": wrong == 0,
            "matches": matches,
        }
    label = int(output.probs[index].argmax())
    target = int(output.targets[index])
    return {
        "prediction": {
            "truth": [_label(model, target)],
            "predicted": [_label(model, label, probs[label])],
            "scores": scores,
        },
        "score": scores[label],
        "loss": loss,
        "error": float(label != target),
        "correct": label == target,
        "matches": [{"true_class": target, "predicted_class": label, "score": scores[label]}],
    }


def eval_items(
    model: InferenceModel, samples: list[Sample]
) -> tuple[list[EvalItem], list[Sample], dict[str, int]]:
    """Samples with a target the model can score; the rest counted by reason."""
    index = {name: i for i, name in enumerate(model.classes)}
    items: list[EvalItem] = []
    kept: list[Sample] = []
    skipped = {"unlabeled": 0, "unknown_class": 0, "several_labels": 0}
    for sample in samples:
        labels = sample.class_names("label")
        if not labels:
            skipped["unlabeled"] += 1
            continue
        if any(name not in index for name in labels):
            skipped["unknown_class"] += 1
            continue
        if multi_label(model):
            target: int | list[int] = sorted({index[name] for name in labels})
        elif len(set(labels)) > 1:
            skipped["several_labels"] += 1
            continue
        else:
            target = index[labels[0]]
        items.append(EvalItem(image_id=sample.image_id, path=sample.path, target=target))
        kept.append(sample)
    return items, kept, skipped


def evaluate(
    model: InferenceModel,
    samples: list[Sample],
    *,
    options: dict[str, Any],
    report: Report | None = None,
) -> EvalOutcome:
    items, kept, skipped = eval_items(model, samples)
    if not items:
        return EvalOutcome(aggregate={"samples": 0}, rows=[], skipped=skipped)
    output = predict(
        model,
        items,
        batch_size=int(options.get("batch_size", 64)),
        tta=list(options.get("tta", [])),
        report=report,
    )
    aggregate = aggregate_metrics(model, output)
    aggregate["loss"] = float(output.losses.mean())
    subsets = [sample.subset for sample in kept]
    by_subset: dict[str, Any] = {}
    for name in dict.fromkeys(subsets):
        picked = [i for i, s in enumerate(subsets) if s == name]
        part = output.rows(picked)
        by_subset[name] = aggregate_metrics(model, part)
        by_subset[name]["loss"] = float(part.losses.mean())
    aggregate["by_subset"] = by_subset
    aggregate["tta"] = output.tta
    if model.info.get("hierarchy"):
        from workers.ml.tasks.classification.hierarchy_eval import hierarchical_aggregate

        extra, extra_by_subset = hierarchical_aggregate(
            model,
            [item.path for item in items],
            output.probs.argmax(1).numpy(),
            output.targets.numpy(),
            subsets,
        )
        aggregate.update(extra)
        for name, scores in extra_by_subset.items():
            by_subset[name].update(scores)
    rows: list[dict[str, Any]] = []
    matches: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        row = per_image(model, output, i)
        for match in row.pop("matches"):
            matches.append({**match, "image_id": item.image_id, "subset": subsets[i]})
        row.update(image_id=item.image_id, subset=subsets[i])
        rows.append(row)
    arrays = {
        "image_ids": np.array([item.image_id for item in items]),
        "subsets": np.array(subsets),
        "probs": output.probs.numpy(),
        "targets": output.targets.numpy(),
        "losses": output.losses.numpy(),
    }
    return EvalOutcome(
        aggregate=aggregate, rows=rows, matches=matches, arrays=arrays, skipped=skipped
    )
