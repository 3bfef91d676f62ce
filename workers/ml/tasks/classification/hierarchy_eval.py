"""Per-level evaluation of a hierarchical classifier: accuracy per level (the heads' own and the
one implied by the fine prediction), hierarchical accuracy, violations and one confusion matrix
per level, next to classification's usual metrics for the fine level."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from workers.ml.checkpoints import preprocess
from workers.ml.data import load_image
from workers.ml.tasks.base import InferenceModel
from workers.ml.tasks.classification.hierarchy import level_scores


def head_predictions(
    model: InferenceModel, paths: Sequence[Any], batch_size: int = 64
) -> dict[str, np.ndarray]:
    """Each group head's predicted group per image (plain eval transform, no TTA)."""
    net = model.model
    device = next(net.parameters()).device
    found: dict[str, list[np.ndarray]] = {}
    with torch.inference_mode():
        for start in range(0, len(paths), batch_size):
            x = torch.stack(
                [preprocess(load_image(p), model) for p in paths[start : start + batch_size]]
            )
            for level, logits in net.levels(x.to(device)).items():  # type: ignore[operator]
                if level != "fine":
                    found.setdefault(level, []).append(logits.argmax(1).cpu().numpy())
    return {level: np.concatenate(parts) for level, parts in found.items()}


def confusion(truth: np.ndarray, predicted: np.ndarray, size: int) -> list[list[int]]:
    matrix = np.zeros((size, size), dtype=np.int64)
    np.add.at(matrix, (truth, predicted), 1)
    return matrix.tolist()  # type: ignore[no-any-return]


def hierarchical_aggregate(
    model: InferenceModel,
    paths: Sequence[Any],
    fine_pred: np.ndarray,
    fine_true: np.ndarray,
    subsets: list[str],
) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    """(keys for the aggregate, the same scores per subset)."""
    info = model.info["hierarchy"]
    heads = head_predictions(model, paths)
    class_group = {lv: np.asarray(info["class_group"][lv]) for lv in heads}
    scores: dict[str, Any] = level_scores(fine_pred, fine_true, heads, class_group)
    by_subset: dict[str, dict[str, float]] = {}
    for name in dict.fromkeys(subsets):
        picked = np.array([s == name for s in subsets])
        by_subset[name] = level_scores(
            fine_pred[picked],
            fine_true[picked],
            {k: v[picked] for k, v in heads.items()},
            class_group,
        )
    leaves = [i for i, leaf in enumerate(info["leaves"]) if leaf]
    position = {c: j for j, c in enumerate(leaves)}
    levels: dict[str, Any] = {
        level: {
            "labels": info["groups"][level],
            "matrix": confusion(
                class_group[level][fine_true], heads[level], len(info["groups"][level])
            ),
        }
        for level in heads
    }
    levels["fine"] = {
        "labels": [model.classes[i] for i in leaves],
        "matrix": confusion(
            np.array([position[int(t)] for t in fine_true], dtype=np.int64),
            np.array([position.get(int(p), 0) for p in fine_pred], dtype=np.int64),
            len(leaves),
        ),
    }
    scores["levels"] = {lv: levels[lv] for lv in info["levels"]}
    scores["gated_inference"] = bool(info.get("gated"))
    return scores, by_subset
