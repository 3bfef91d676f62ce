"""Oriented object detection, the code half: a rotated FCOS (KLD box loss, rotated NMS).

This __init__ stays free of torch (the predictor imports it for the decoder)."""

from __future__ import annotations

from typing import Any

from workers.ml.tasks import register_task_code
from workers.ml.tasks.base import Prepared, Sample, TaskCode
from workers.ml.tasks.oriented_detection.decode import OrientedDecoder


def heads(config: dict[str, Any]) -> dict[str, Any]:
    """The decoding settings a trained model carries into evaluation and its exports."""
    return {
        "score_threshold": float(config.get("score_threshold", 0.25)),
        "nms_iou": float(config.get("nms_iou", 0.3)),
        "max_detections": int(config.get("max_detections", 100)),
    }


class OrientedDetectionCode(TaskCode):
    key = "oriented_detection"
    decoder = OrientedDecoder()

    def prepare(
        self, samples: dict[str, list[Sample]], classes: list[str], config: dict[str, Any]
    ) -> Prepared:
        """le90 rotated boxes as targets; images without boxes stay as negatives; degenerate
        (zero-area) boxes are dropped with a note."""
        from workers.ml.tasks.oriented_detection.data import obb_targets

        dropped = boxes = 0
        for rows in samples.values():
            for sample in rows:
                sample.target, bad = obb_targets(sample, classes)
                dropped += bad
                boxes += len(sample.target["obb"])
        notes = []
        if dropped:
            notes.append(
                f"{dropped} degenerate rotated box(es) (a side under 1 px, zero area) left out."
            )
        negatives = sum(1 for s in samples.get("train", []) if not s.target["obb"])
        if negatives:
            notes.append(f"{negatives} training image(s) without boxes are used as negatives.")
        return Prepared(
            samples=samples, info=heads(config), dropped={"boxes": dropped}, notes=notes
        )

    def build_module(self, config: dict[str, Any], classes: list[str], info: dict[str, Any]) -> Any:
        from workers.ml.tasks.oriented_detection.module import OrientedModule

        return OrientedModule(config, classes)

    def datasets(
        self,
        prepared: Prepared,
        config: dict[str, Any],
        classes: list[str],
        info: dict[str, Any],
        normalization: tuple[list[float], list[float]],
    ) -> tuple[Any, Any, Any]:
        from workers.ml.tasks.detection.data import collate
        from workers.ml.tasks.oriented_detection.data import OrientedDataset

        mean, std = normalization
        size = int(config["image_size"])
        train = OrientedDataset(
            prepared.samples.get("train", []), size, mean, std, config["augment"]
        )
        val = OrientedDataset(prepared.samples.get("val", []), size, mean, std, None)
        return train, val, collate

    def model_ids(self) -> set[str]:
        from workers.ml.tasks.oriented_detection.models import model_ids

        return model_ids()

    def build_model(self, provenance: dict[str, Any]) -> Any:
        from workers.ml.tasks.oriented_detection.models import build_oriented

        model, _ = build_oriented(
            provenance["model"], len(provenance["classes"]), int(provenance["image_size"]), False
        )
        return model

    def model_info(self, provenance: dict[str, Any]) -> dict[str, Any]:
        return heads(provenance["config"])


register_task_code(OrientedDetectionCode())
