"""Per-level evaluation of a hierarchical segmenter, next to segmentation's usual keys for the
fine level: mIoU per level (`fine/miou` = the usual mIoU; `coarse/miou`, `binary/miou` from
the heads' own per-pixel predictions; `<level>/implied_miou` from the groups the fine
prediction implies), `violations` (pixels whose fine class lies outside the coarse head's
group; 0 with gated inference) and one pixel confusion matrix per level (`levels`), overall
and per subset. The heads are read with the plain eval transform (no test-time views), at
each image's original size as the fine prediction is."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from workers.ml.checkpoints import preprocess
from workers.ml.data import load_image
from workers.ml.tasks.base import InferenceModel, Sample
from workers.ml.tasks.segmentation.data import MaskTarget, load_mask
from workers.ml.tasks.segmentation.decode import IGNORE, confusion, resize_logits, scores
from workers.ml.tasks.segmentation.hierarchy import target_index


def _lookup(index: list[int]) -> np.ndarray:
    table = np.full(256, IGNORE, dtype=np.int64)
    table[: len(index)] = np.where(np.asarray(index) >= 0, index, IGNORE)
    return table


def _level_miou(cm: np.ndarray, labels: list[str]) -> float | None:
    background = labels.index("background") if "background" in labels else None
    return scores(cm, background)["miou"]  # type: ignore[no-any-return]


def _grouped(cm: np.ndarray, rows: list[int], cols: list[int], size: int) -> np.ndarray:
    """A class confusion matrix summed into groups (rows by the truth's target group, columns
    by the predicted class's group; -1 dropped)."""
    out = np.zeros((size, size), dtype=np.int64)
    for t, gt in enumerate(rows):
        for p, gp in enumerate(cols):
            if gt >= 0 and gp >= 0:
                out[gt, gp] += cm[t, p]
    return out


def hierarchical_aggregate(
    model: InferenceModel,
    scored: list[tuple[Sample, MaskTarget]],
    aggregate: dict[str, Any],
    batch_size: int = 16,
) -> dict[str, Any]:
    """The per-level keys for the aggregate (and its `by_subset` entries, updated in place)."""
    info = model.info["hierarchy"]
    classes = list(model.classes)
    net = model.model
    device = next(net.parameters()).device
    group_levels = list(info["groups"])
    wanted = target_index(classes, info)
    lookups = {lv: _lookup(wanted[lv]) for lv in group_levels}
    coarse_of = np.asarray(info["class_group"]["coarse"])
    sizes = {lv: len(info["groups"][lv]) for lv in group_levels}
    cms: dict[str, dict[str, np.ndarray]] = {}  # subset → level → matrix
    broken: dict[str, int] = {}
    with torch.inference_mode():
        for start in range(0, len(scored), batch_size):
            chunk = scored[start : start + batch_size]
            pictures = [load_image(sample.path) for sample, _ in chunk]
            x = torch.stack([preprocess(p, model) for p in pictures]).to(device)
            out = net.levels(x)  # type: ignore[operator]
            routed = net.route(out)  # type: ignore[operator]
            for i, ((sample, target), picture) in enumerate(zip(chunk, pictures, strict=True)):
                size = picture.size
                truth = load_mask(target, *size).astype(np.int64)
                fine = resize_logits(routed[i].float().cpu().numpy(), size).argmax(0)
                per = cms.setdefault(
                    sample.subset, {lv: np.zeros((n, n), np.int64) for lv, n in sizes.items()}
                )
                heads = {}
                for level in group_levels:
                    logits = out[level][i].float().cpu().numpy()
                    heads[level] = resize_logits(logits, size).argmax(0)
                    per[level] += confusion(lookups[level][truth], heads[level], sizes[level])
                wrong = int((coarse_of[fine] != heads["coarse"]).sum())
                broken[sample.subset] = broken.get(sample.subset, 0) + wrong
    leaves = [i for i, leaf in enumerate(info["leaves"]) if leaf]
    result: dict[str, Any] = {"gated_inference": bool(info.get("gated"))}

    def level_keys(fine_cm: np.ndarray, per: dict[str, np.ndarray], wrong: int) -> dict[str, Any]:
        keys: dict[str, Any] = {"violations": wrong}
        for level in group_levels:
            labels = info["groups"][level]
            keys[f"{level}/miou"] = _level_miou(per[level], labels)
            implied = _grouped(fine_cm, wanted[level], info["class_group"][level], sizes[level])
            keys[f"{level}/implied_miou"] = _level_miou(implied, labels)
        return keys

    empty = {lv: np.zeros((n, n), np.int64) for lv, n in sizes.items()}
    total = {lv: sum((m[lv] for m in cms.values()), empty[lv]) for lv in sizes}
    fine_cm = np.asarray(aggregate["confusion"]["matrix"], dtype=np.int64)
    result.update(level_keys(fine_cm, total, sum(broken.values())))
    result["fine/miou"] = aggregate.get("miou")  # the usual key, as scored (with any TTA)
    for subset, entry in aggregate.get("by_subset", {}).items():
        if subset in cms:
            subset_cm = np.asarray(entry["confusion"]["matrix"], dtype=np.int64)
            entry.update(level_keys(subset_cm, cms[subset], broken[subset]))
            entry["fine/miou"] = entry.get("miou")
    levels: dict[str, Any] = {
        level: {"labels": info["groups"][level], "matrix": total[level].tolist()}
        for level in group_levels
    }
    levels["fine"] = {
        "labels": [classes[i] for i in leaves],
        "matrix": fine_cm[np.ix_(leaves, leaves)].tolist(),
    }
    result["levels"] = {lv: levels[lv] for lv in info["levels"]}
    return result
