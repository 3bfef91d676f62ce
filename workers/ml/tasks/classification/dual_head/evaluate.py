"""Dual-head evaluation: classification's evaluation (the class head is the flat classifier
`forward` returns) plus a pass for the masks: per-channel IoU and mean IoU on images with a
mask, the gate's measures of every image, its calibration on the validation subset (else all
evaluated images) and the in-domain pass rate per class on the rest (test).

The familiarity rule's reference (per-class embedding means and spread) comes from training
images (`options["reference_samples"]`, which the evaluate job passes: the split's train
subset, at most REFERENCE_IMAGES of them); without them the rule stays off."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from workers.ml.checkpoints import preprocess
from workers.ml.data import load_image
from workers.ml.tasks.base import EvalOutcome, InferenceModel, Report, Sample
from workers.ml.tasks.classification.dual_head import gate
from workers.ml.tasks.classification.dual_head.metrics import ChannelIoU, fired
from workers.ml.tasks.classification.evaluate import evaluate as classify
from workers.ml.tasks.segmentation.data import load_mask

from .data import mask_of

REFERENCE_IMAGES = 2000  # training images the familiarity reference is estimated from


def _batches(model: InferenceModel, paths: list[Any], batch: int) -> Iterator[torch.Tensor]:
    """The images as preprocessed batches on the model's device (call under inference mode)."""
    for start in range(0, len(paths), batch):
        x = torch.stack([preprocess(load_image(p), model) for p in paths[start : start + batch]])
        yield x.to(model.device)


def channel_probs(
    model: InferenceModel, paths: list[Any], batch: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """([N, K, S, S] channel probabilities at the model's input side, [N, D] embeddings)."""
    net = model.model
    probs, embeddings = [], []
    with torch.inference_mode():
        for x in _batches(model, paths, batch):
            _, seg, embedding = net.outputs(x)  # type: ignore[operator]
            probs.append(net.channel_probs(seg).float().cpu().numpy())  # type: ignore[operator]
            embeddings.append(embedding.float().cpu().numpy())
    if not probs:
        return np.zeros((0, 0, 0, 0)), np.zeros((0, 0))
    return np.concatenate(probs), np.concatenate(embeddings)


def reference_of(model: InferenceModel, samples: list[Sample]) -> dict[str, Any] | None:
    """The familiarity reference from (at most REFERENCE_IMAGES, evenly spread) labelled
    training images."""
    labelled = [(s, (s.class_names("label") or [None])[0]) for s in samples]
    labelled = [(s, c) for s, c in labelled if c]
    if len(labelled) > REFERENCE_IMAGES:
        step = len(labelled) / REFERENCE_IMAGES
        labelled = [labelled[int(i * step)] for i in range(REFERENCE_IMAGES)]
    if not labelled:
        return None
    paths = [s.path for s, _ in labelled]
    with torch.inference_mode():  # the backbone's pass only: no masks are needed here
        chunks = [
            model.model.embed(x).float().cpu().numpy()  # type: ignore[operator]
            for x in _batches(model, paths, 32)
        ]
    embeddings = np.concatenate(chunks)
    by_class: dict[str, list[np.ndarray]] = {}
    for (_, name), vector in zip(labelled, embeddings, strict=True):
        by_class.setdefault(name, []).append(vector)
    return gate.feature_reference({k: np.stack(v) for k, v in by_class.items()})


def evaluate(
    model: InferenceModel,
    samples: list[Sample],
    *,
    options: dict[str, Any],
    report: Report | None = None,
) -> EvalOutcome:
    outcome = classify(model, samples, options=options, report=report)
    seg = model.info["segmentation"]
    channels, exclusive = list(seg["channels"]), bool(seg["exclusive"])
    by_id = {s.image_id: s for s in samples}
    rows = [r for r in outcome.rows if r["image_id"] in by_id]
    if not rows:
        return outcome
    probs, embeddings = channel_probs(model, [by_id[r["image_id"]].path for r in rows])
    reference = reference_of(model, list(options.get("reference_samples") or []))
    iou = ChannelIoU(channels)
    ratios: dict[str, list[float]] = {}
    measured = []
    size = model.image_size
    for row, p, vector in zip(rows, probs, embeddings, strict=True):
        sample = by_id[row["image_id"]]
        target, _weight = mask_of(sample, {"A": 1.0, "B": 1.0, "C": 0.0})
        if target is not None:
            truth = load_mask(target, size, size)
            iou.update(fired(p, exclusive), truth)
        m = gate.measure(p, exclusive, channels)
        m["feature_distance"] = gate.feature_distance(vector, reference)
        truth_class = (sample.class_names("label") or [None])[0]
        measured.append((row, m, truth_class))
        row["prediction"]["gate_measures"] = {
            k: v
            for k, v in m.items()
            if k in ("foreground_ratio", "largest_component", "feature_distance")
        }
    calibrate_on = "val" if any(r["subset"] == "val" for r, _, _ in measured) else None
    distances: list[float] = []
    for row, m, truth_class in measured:
        if truth_class and (calibrate_on is None or row["subset"] == calibrate_on):
            ratios.setdefault(truth_class, []).append(m["foreground_ratio"])
            distances.append(m["feature_distance"])
    calibrated = gate.calibrate(ratios, distances=distances, reference=reference)
    rules = calibrated["rules"]
    passes: dict[str, list[bool]] = {}
    for row, m, truth_class in measured:
        predicted = (row["prediction"].get("predicted") or [{}])[0].get("class")
        decision = gate.verdict(m, rules, predicted)
        row["prediction"]["gate"] = decision
        if calibrate_on is None or row["subset"] != calibrate_on:
            passes.setdefault(truth_class or "?", []).append(bool(decision["passed"]))
    seg_scores = iou.compute()
    outcome.aggregate.update(seg_scores)
    total = [p for values in passes.values() for p in values]
    outcome.aggregate["gate"] = {
        **calibrated,
        "calibration_subset": calibrate_on or "all",
        "in_domain": {
            "pass_rate": float(np.mean(total)) if total else None,
            "images": len(total),
            "per_class": {k: float(np.mean(v)) for k, v in sorted(passes.items())},
        },
    }
    return outcome


def gate_image(model: InferenceModel, picture: Any, rules: dict[str, Any]) -> dict[str, Any]:
    """One image through the checkpoint: the predicted class and the gate's verdict."""
    seg = model.info["segmentation"]
    net = model.model
    with torch.inference_mode():
        logits, masks, embedding = net.outputs(preprocess(picture, model)[None])  # type: ignore[operator]
        probs = net.channel_probs(masks)[0].float().numpy()  # type: ignore[operator]
    top = model.classes[int(logits[0].argmax())]
    measures = gate.measure(probs, bool(seg["exclusive"]), list(seg["channels"]))
    measures["feature_distance"] = gate.feature_distance(
        embedding[0].float().numpy(), gate.rules_of(rules).get("feature_reference")
    )
    return {"class": top, **gate.verdict(measures, rules, top)}
