"""Classification, the code half: multi-class and multi-label image classifiers.

This __init__ stays free of torch (the predictor imports it for the decoder); the module,
datasets, evaluation and export load when a method needs them.
"""

from __future__ import annotations

from typing import Any

from workers.ml.tasks import register_task_code
from workers.ml.tasks.base import (
    Prepared,
    Sample,
    TaskCode,
)
from workers.ml.tasks.classification import dual_head
from workers.ml.tasks.classification.decode import ClassificationDecoder


class ClassificationCode(TaskCode):
    key = "classification"
    decoder = ClassificationDecoder()

    def prepare(
        self, samples: dict[str, list[Sample]], classes: list[str], config: dict[str, Any]
    ) -> Prepared:
        """Targets are class indices; single-label training leaves unlabelled images out.
        Multi-label when asked, or (auto) when any image carries more than one label."""
        if config.get("hierarchy"):
            return self._prepare_hierarchical(samples, classes, config)
        if dual_head.is_dual_head(config.get("model")):
            prepared = self._prepare_flat(samples, classes, config)
            prepared.info["segmentation"] = dual_head.segmentation_info(prepared)
            return prepared
        return self._prepare_flat(samples, classes, config)

    def _prepare_flat(
        self, samples: dict[str, list[Sample]], classes: list[str], config: dict[str, Any]
    ) -> Prepared:
        index = {name: i for i, name in enumerate(classes)}
        several = config.get("multi_label")
        if several is None:
            several = any(
                len(set(s.class_names("label"))) > 1 for rows in samples.values() for s in rows
            )
        kept: dict[str, list[Sample]] = {}
        dropped: dict[str, int] = {}
        for subset, rows in samples.items():
            kept[subset] = []
            for sample in rows:
                sample.target = sorted(
                    {index[n] for n in sample.class_names("label") if n in index}
                )
                if sample.target or several:
                    kept[subset].append(sample)
            dropped[subset] = len(rows) - len(kept[subset])
        return Prepared(samples=kept, info={"multi_label": bool(several)}, dropped=dropped)

    def _prepare_hierarchical(
        self, samples: dict[str, list[Sample]], classes: list[str], config: dict[str, Any]
    ) -> Prepared:
        """One fine (leaf) label per image; images labelled with a group or with several
        labels cannot train a hierarchical model and are left out (counted)."""
        from workers.ml.hierarchy import hierarchy_info

        info = hierarchy_info(config, classes)
        index = {name: i for i, name in enumerate(classes) if info["leaves"][i]}
        kept: dict[str, list[Sample]] = {}
        dropped: dict[str, int] = {}
        for subset, rows in samples.items():
            kept[subset] = []
            for sample in rows:
                names = set(sample.class_names("label"))
                if len(names) == 1 and next(iter(names)) in index:
                    sample.target = [index[next(iter(names))]]
                    kept[subset].append(sample)
            dropped[subset] = len(rows) - len(kept[subset])
        notes = []
        if any(dropped.values()):
            notes.append(
                "Hierarchical training uses images with exactly one fine (leaf) label; left "
                f"out: {dropped}."
            )
        return Prepared(
            samples=kept,
            info={"multi_label": False, "hierarchy": info},
            dropped=dropped,
            notes=notes,
        )

    def build_module(self, config: dict[str, Any], classes: list[str], info: dict[str, Any]) -> Any:
        from workers.ml.tasks.classification.module import ClassificationModule

        if info.get("segmentation"):
            from workers.ml.tasks.classification.dual_head.module import DualHeadModule

            return DualHeadModule(config, classes, info)
        if info.get("hierarchy"):
            from workers.ml.tasks.classification.hierarchy import HierarchicalModule

            return HierarchicalModule(config, classes, info)

        return ClassificationModule(config, len(classes), bool(info.get("multi_label")))

    def datasets(
        self,
        prepared: Prepared,
        config: dict[str, Any],
        classes: list[str],
        info: dict[str, Any],
        normalization: tuple[list[float], list[float]],
    ) -> tuple[Any, Any, None]:
        from workers.ml.data import ImageDataset
        from workers.ml.transforms import EvalTransform, TrainTransform

        mean, std = normalization
        size = int(config["image_size"])
        several = bool(info.get("multi_label"))
        if info.get("segmentation"):
            from workers.ml.tasks.classification.dual_head.data import DualHeadDataset

            tiers = config["dual_head"]["tier_weights"]
            args = (size, mean, std, tiers)
            return (
                DualHeadDataset(
                    prepared.samples.get("train", []),
                    *args,
                    config["augment"],
                    several,
                    len(classes),
                    float(config["dual_head"].get("negative_share", 0.0)),
                ),
                DualHeadDataset(
                    prepared.samples.get("val", []), *args, None, several, len(classes)
                ),
                None,
            )
        train = ImageDataset(
            prepared.samples.get("train", []),
            TrainTransform(size, mean, std, config["augment"]),
            multi_label=several,
            num_classes=len(classes),
        )
        val = ImageDataset(
            prepared.samples.get("val", []),
            EvalTransform(size, mean, std),
            multi_label=several,
            num_classes=len(classes),
        )
        return train, val, None

    def model_ids(self) -> set[str]:
        from workers.ml.backbones import backbone_ids

        ids = set(backbone_ids("embedding"))  # a classifier head goes on any image embedding
        # the dual-head decoder goes where DeepLabV3+ goes: on dense features
        return ids | dual_head.model_ids(set(backbone_ids("dense")))

    def build_model(self, provenance: dict[str, Any]) -> Any:
        from workers.ml.heads import build_classifier

        task_info = provenance.get("task_info") or {}
        if task_info.get("segmentation"):
            from workers.ml.tasks.classification.dual_head.net import DualHeadNet

            return DualHeadNet(
                provenance["model"],
                len(provenance["classes"]),
                task_info["segmentation"],
                width=int(provenance["config"]["dual_head"]["decoder_channels"]),
                arch=provenance.get("arch"),
            )
        hierarchy = task_info.get("hierarchy")
        if hierarchy:
            from workers.ml.tasks.classification.hierarchy import HierarchicalClassifier

            return HierarchicalClassifier(
                provenance["model"],
                len(provenance["classes"]),
                hierarchy,
                pretrained=False,
                arch=provenance.get("arch"),
            )

        model, _ = build_classifier(
            provenance["model"],
            len(provenance["classes"]),
            pretrained=False,
            arch=provenance.get("arch"),
        )
        return model

    def reference_subsets(self, model: Any) -> tuple[str, ...]:
        # a dual-head gate's familiarity rule measures images against the training images
        return ("train",) if model.info.get("segmentation") else ()

    def model_info(self, provenance: dict[str, Any]) -> dict[str, Any]:
        return {
            "multi_label": bool(provenance.get("multi_label", False)),
            "thresholds": provenance.get("thresholds"),
            "hierarchy": (provenance.get("task_info") or {}).get("hierarchy"),
            "segmentation": (provenance.get("task_info") or {}).get("segmentation"),
        }

    def evaluate(
        self, model: Any, samples: list[Sample], *, options: dict[str, Any], report: Any = None
    ) -> Any:
        if model.info.get("segmentation"):
            from workers.ml.tasks.classification.dual_head.evaluate import evaluate

            return evaluate(model, samples, options=options, report=report)
        return super().evaluate(model, samples, options=options, report=report)

    def export_module(self, model: Any) -> Any:
        if model.info.get("segmentation"):
            from workers.ml.tasks.classification.dual_head.export import export_module

            return export_module(model)
        return super().export_module(model)


register_task_code(ClassificationCode())
