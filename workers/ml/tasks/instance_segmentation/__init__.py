"""Instance segmentation, the code half: Mask R-CNN (a small CPU-friendly one and ResNet-50
FPN) on the detection task's data pipeline, matcher and mAP helpers.

This __init__ stays free of torch (the predictor imports it for the decoder)."""

from __future__ import annotations

from typing import Any

from workers.ml.tasks import register_task_code
from workers.ml.tasks.base import InferenceModel, Prepared, Sample, TaskCode
from workers.ml.tasks.instance_segmentation.decode import InstanceDecoder


class InstanceSegmentationCode(TaskCode):
    key = "instance_segmentation"
    decoder = InstanceDecoder()

    def prepare(
        self, samples: dict[str, list[Sample]], classes: list[str], config: dict[str, Any]
    ) -> Prepared:
        """Instances as targets (crowd and box-only objects ignored); images without objects
        stay in as negatives; shapes with fewer than 3 points go."""
        from workers.ml.tasks.instance_segmentation.data import instance_targets

        dropped = 0
        ignored = 0
        for rows in samples.values():
            for sample in rows:
                sample.target, bad = instance_targets(sample, classes)
                dropped += bad
                ignored += sum(1 for i in sample.target if i["ignore"])
        notes = []
        if dropped:
            notes.append(f"{dropped} shape(s) with fewer than 3 points left out.")
        if ignored:
            notes.append(
                f"{ignored} crowd or box-only object(s) are ignored: not trained on, and "
                "neither hits nor misses in evaluation."
            )
        return Prepared(
            samples=samples,
            info={"score_threshold": float(config.get("score_threshold", 0.25))},
            dropped={"shapes": dropped},
            notes=notes,
        )

    def build_module(self, config: dict[str, Any], classes: list[str], info: dict[str, Any]) -> Any:
        from workers.ml.tasks.instance_segmentation.module import InstanceModule

        return InstanceModule(config, classes)

    def datasets(
        self,
        prepared: Prepared,
        config: dict[str, Any],
        classes: list[str],
        info: dict[str, Any],
        normalization: tuple[list[float], list[float]],
    ) -> tuple[Any, Any, Any]:
        from workers.ml.tasks.detection.data import collate
        from workers.ml.tasks.instance_segmentation.data import InstanceDataset

        mean, std = normalization
        size = int(config["image_size"])
        train = InstanceDataset(
            prepared.samples.get("train", []), size, mean, std, config["augment"]
        )
        val = InstanceDataset(prepared.samples.get("val", []), size, mean, std, None)
        return train, val, collate

    def model_ids(self) -> set[str]:
        from workers.ml.tasks.instance_segmentation.models import model_ids

        return model_ids()

    def build_model(self, provenance: dict[str, Any]) -> Any:
        from workers.ml.tasks.instance_segmentation.models import build_instance_model

        model, _ = build_instance_model(
            provenance["model"],
            len(provenance["classes"]),
            int(provenance["image_size"]),
            provenance["config"],
            False,
            arch=provenance.get("arch"),
        )
        return model

    def model_info(self, provenance: dict[str, Any]) -> dict[str, Any]:
        return {"score_threshold": float(provenance["config"].get("score_threshold", 0.25))}

    def parity_images(self, model: InferenceModel) -> int:
        """Masks are [N, S, S] floats per image on both sides: fewer images than boxes."""
        return 64


register_task_code(InstanceSegmentationCode())
