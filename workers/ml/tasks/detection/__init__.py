"""Object detection, the code half: torchvision detectors and a small CPU-friendly FCOS.

This __init__ stays free of torch (the predictor imports it for the decoder)."""

from __future__ import annotations

from typing import Any

from workers.ml.tasks import register_task_code
from workers.ml.tasks.base import (
    Prepared,
    Sample,
    TaskCode,
)
from workers.ml.tasks.detection.decode import DetectionDecoder


class DetectionCode(TaskCode):
    key = "detection"
    decoder = DetectionDecoder()

    def prepare(
        self, samples: dict[str, list[Sample]], classes: list[str], config: dict[str, Any]
    ) -> Prepared:
        """Boxes as targets; images without boxes stay in as negatives; degenerate boxes go."""
        from workers.ml.tasks.detection.data import box_targets

        dropped_boxes = 0
        boxes = 0
        for rows in samples.values():
            for sample in rows:
                sample.target, bad = box_targets(sample, classes)
                dropped_boxes += bad
                boxes += len(sample.target["boxes"])
        notes = []
        if dropped_boxes:
            notes.append(f"{dropped_boxes} degenerate box(es) (thinner than 1 px) left out.")
        negatives = sum(1 for s in samples.get("train", []) if not s.target["boxes"])
        if negatives:
            notes.append(f"{negatives} training image(s) without boxes are used as negatives.")
        return Prepared(
            samples=samples,
            info={"score_threshold": float(config.get("score_threshold", 0.25))},
            dropped={"boxes": dropped_boxes},
            notes=notes,
        )

    def build_module(self, config: dict[str, Any], classes: list[str], info: dict[str, Any]) -> Any:
        from workers.ml.tasks.detection.module import DetectionModule

        return DetectionModule(config, classes)

    def datasets(
        self,
        prepared: Prepared,
        config: dict[str, Any],
        classes: list[str],
        info: dict[str, Any],
        normalization: tuple[list[float], list[float]],
    ) -> tuple[Any, Any, Any]:
        from workers.ml.tasks.detection.data import DetectionDataset, collate

        mean, std = normalization
        size = int(config["image_size"])
        train = DetectionDataset(
            prepared.samples.get("train", []), size, mean, std, config["augment"]
        )
        val = DetectionDataset(prepared.samples.get("val", []), size, mean, std, None)
        return train, val, collate

    def model_ids(self) -> set[str]:
        from workers.ml.tasks.detection.models import detector_ids

        return detector_ids()

    def build_model(self, provenance: dict[str, Any]) -> Any:
        from workers.ml.tasks.detection.models import build_detector

        config = provenance["config"]
        model, _ = build_detector(
            provenance["model"],
            len(provenance["classes"]),
            int(provenance["image_size"]),
            config,
            False,
        )
        return model

    def model_info(self, provenance: dict[str, Any]) -> dict[str, Any]:
        return {"score_threshold": float(provenance["config"].get("score_threshold", 0.25))}


register_task_code(DetectionCode())
