"""Semantic segmentation, the code half: a class for every pixel.

This __init__ stays free of torch (the predictor imports it for the decoder); data, models,
evaluation and export load when a method needs them.
"""

from __future__ import annotations

from typing import Any

from workers.ml.tasks import register_task_code
from workers.ml.tasks.base import (
    InferenceModel,
    Prepared,
    Sample,
    TaskCode,
)
from workers.ml.tasks.segmentation.decode import SegmentationDecoder, background_of

# Logit bytes (both runs) the export's parity check may hold: 256 images of 5 classes at
# 128 px, or fewer of bigger maps.
PARITY_BYTES = 256 * 5 * 128 * 128 * 4 * 2


class SegmentationCode(TaskCode):
    key = "segmentation"
    decoder = SegmentationDecoder()

    def prepare(
        self, samples: dict[str, list[Sample]], classes: list[str], config: dict[str, Any]
    ) -> Prepared:
        """Index-mask targets; images without a mask of a known class are left out. The
        background class (if any) and the cross-entropy class weights are data facts."""
        from workers.ml.tasks.segmentation.data import class_weights, mask_target

        background = background_of(classes)
        kept: dict[str, list[Sample]] = {}
        dropped: dict[str, int] = {}
        for subset, rows in samples.items():
            kept[subset] = []
            for sample in rows:
                sample.target = mask_target(sample, classes, background)
                if sample.target is not None:
                    kept[subset].append(sample)
            dropped[subset] = len(rows) - len(kept[subset])
        notes = [
            f"{n} {subset} image(s) without a mask left out." for subset, n in dropped.items() if n
        ]
        weights = class_weights(
            kept.get("train", []), len(classes), str(config.get("class_weights", "none"))
        )
        if weights:
            notes.append(
                "Cross-entropy class weights: "
                + ", ".join(f"{c} {w:.2f}" for c, w in zip(classes, weights, strict=True))
                + "."
            )
        info = {"background": background, "class_weights": weights}
        if config.get("hierarchy"):
            from workers.ml.hierarchy import hierarchy_info

            info["hierarchy"] = hierarchy_info(config, classes)
        return Prepared(samples=kept, info=info, dropped=dropped, notes=notes)

    def build_module(self, config: dict[str, Any], classes: list[str], info: dict[str, Any]) -> Any:
        from workers.ml.tasks.segmentation.module import SegmentationModule

        if info.get("hierarchy"):
            from workers.ml.tasks.segmentation.hierarchy import HierarchicalSegmentationModule

            return HierarchicalSegmentationModule(config, classes, info)
        return SegmentationModule(config, classes, info)

    def datasets(
        self,
        prepared: Prepared,
        config: dict[str, Any],
        classes: list[str],
        info: dict[str, Any],
        normalization: tuple[list[float], list[float]],
    ) -> tuple[Any, Any, None]:
        from workers.ml.tasks.segmentation.data import SegmentationDataset

        mean, std = normalization
        size = int(config["image_size"])
        train = SegmentationDataset(
            prepared.samples.get("train", []), size, mean, std, config["augment"]
        )
        val = SegmentationDataset(prepared.samples.get("val", []), size, mean, std, None)
        return train, val, None

    def model_ids(self) -> set[str]:
        from workers.ml.tasks.segmentation.models import segmenter_ids

        return segmenter_ids()

    def build_model(self, provenance: dict[str, Any]) -> Any:
        from workers.ml.tasks.segmentation.models import build_segmenter

        config = provenance["config"]
        hierarchy = (provenance.get("task_info") or {}).get("hierarchy")
        if hierarchy:
            from workers.ml.tasks.segmentation.hierarchy import HierarchicalSegmenter

            return HierarchicalSegmenter(
                provenance["model"],
                len(provenance["classes"]),
                hierarchy,
                width=config.get("decoder_channels"),
                arch=provenance.get("arch"),
            )
        model, _ = build_segmenter(
            provenance["model"],
            len(provenance["classes"]),
            width=config.get("decoder_channels"),
            pretrained=False,
            arch=provenance.get("arch"),
        )
        return model

    def model_info(self, provenance: dict[str, Any]) -> dict[str, Any]:
        info = dict(provenance.get("task_info") or {})
        return {
            "background": info.get("background", background_of(provenance["classes"])),
            "hierarchy": info.get("hierarchy"),
        }

    def parity_images(self, model: InferenceModel) -> int:
        per_image = len(model.classes) * model.image_size**2 * 4 * 2
        return max(8, min(256, PARITY_BYTES // max(1, per_image)))


register_task_code(SegmentationCode())
