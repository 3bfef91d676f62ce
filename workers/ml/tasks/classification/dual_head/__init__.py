"""Dual-head models (classification + segmentation on one backbone) for classification
projects whose images carry channel masks; the seed plan's §4/§7/§10 as a model family of the
classification task (catalog ids `dualhead_<backbone>`, app/tasks/dual_head.py).

Kept torch-free: classification's code half imports this package to route dual-head models
here; the network, data, module, evaluation and export load when used."""

from __future__ import annotations

from typing import Any

from app.tasks.dual_head import PREFIX, is_dual_head
from workers.ml.tasks.base import Prepared

__all__ = ["PREFIX", "is_dual_head", "model_ids", "segmentation_info"]


def model_ids(backbones: set[str]) -> set[str]:
    return {PREFIX + b for b in backbones}


def segmentation_info(prepared: Prepared) -> dict[str, Any]:
    """The channels the project's masks carry (stored in the checkpoint's task info)."""
    from workers.ml.tasks.classification.dual_head.data import channel_info

    info = channel_info(prepared.samples)
    if not info["channels"]:
        raise ValueError(
            "a dual-head model needs images with masks: import class folders with a masks/ "
            "folder (see docs/dual-head.md), or pick a classification-only model"
        )
    return info
