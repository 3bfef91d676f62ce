"""Anomaly detection, the code half: an image score and an anomaly map per image, a threshold
calibrated on the validation subset.

`prepare` decides the mode (supervised when asked, or with `auto` when the training subset
holds anomalous images and the method can use them; else unsupervised, which trains on the
normal images only) and, when the split has no validation images (MVTec's own train/test),
holds every tenth normal training image out to calibrate the threshold on.
This __init__ stays free of torch (the predictor imports it for the decoder).
"""

from __future__ import annotations

from typing import Any

from app.catalog import backbones_with
from workers.ml.tasks import register_task_code
from workers.ml.tasks.anomaly.decode import AnomalyDecoder
from workers.ml.tasks.anomaly.labels import label_of
from workers.ml.tasks.base import Prepared, Sample, TaskCode

SUPERVISED_METHODS = ("anomaly_unet",)
LEARNED_METHODS = ("anomaly_unet", "conv_autoencoder")
MEMORY_KINDS = ("padim", "patchcore")  # on every backbone declaring "memory" features
CALIBRATION_EVERY = 10  # one normal training image in ten calibrates when there is no val
CALIBRATION_FACTS = ("threshold", "threshold_rule", "score_range", "map_range")


class AnomalyCode(TaskCode):
    key = "anomaly"
    decoder = AnomalyDecoder()

    def prepare(
        self, samples: dict[str, list[Sample]], classes: list[str], config: dict[str, Any]
    ) -> Prepared:
        kept: dict[str, list[Sample]] = {}
        dropped: dict[str, int] = {}
        for subset, rows in samples.items():
            kept[subset] = []
            for sample in rows:
                label = label_of(sample)
                if label is not None:
                    sample.target = label
                    kept[subset].append(sample)
            dropped[subset] = len(rows) - len(kept[subset])
        train = kept.get("train", [])
        anomalous = sum(1 for s in train if s.target == 1)
        method = str(config.get("model"))
        mode = str(config.get("mode", "auto"))
        notes: list[str] = []
        if mode == "auto":
            mode = "supervised" if anomalous and method in SUPERVISED_METHODS else "unsupervised"
        if mode == "unsupervised" and anomalous:
            kept["train"] = [s for s in train if s.target == 0]
            dropped["train"] = dropped.get("train", 0) + anomalous
            notes.append(
                f"Unsupervised: the {anomalous} anomalous training image(s) are left out; the "
                "detector learns from normal images only."
            )
        held = 0
        if not kept.get("val"):
            normals = [s for s in kept["train"] if s.target == 0]
            chosen = {id(s) for s in normals[CALIBRATION_EVERY - 1 :: CALIBRATION_EVERY]}
            if not chosen and len(normals) > 1:
                chosen = {id(normals[-1])}
            kept["val"] = [s for s in kept["train"] if id(s) in chosen]
            kept["train"] = [s for s in kept["train"] if id(s) not in chosen]
            held = len(kept["val"])
            if held:
                notes.append(
                    f"The split has no validation images: {held} normal training image(s) "
                    "(every tenth) were held out to calibrate the threshold."
                )
        info = {
            "mode": mode,
            "method": method,
            "train_normal": sum(1 for s in kept["train"] if s.target == 0),
            "train_anomalous": sum(1 for s in kept["train"] if s.target == 1),
            "calibration_held_out": held,
        }
        return Prepared(samples=kept, info=info, dropped=dropped, notes=notes)

    def build_module(self, config: dict[str, Any], classes: list[str], info: dict[str, Any]) -> Any:
        from workers.ml.tasks.anomaly.module import AnomalyModule

        return AnomalyModule(config, info)

    def datasets(
        self,
        prepared: Prepared,
        config: dict[str, Any],
        classes: list[str],
        info: dict[str, Any],
        normalization: tuple[list[float], list[float]],
    ) -> tuple[Any, Any, None]:
        from workers.ml.tasks.anomaly.data import AnomalyDataset

        mean, std = normalization
        size = int(config["image_size"])
        train = AnomalyDataset(
            prepared.samples.get("train", []), size, mean, std, config["augment"]
        )
        val = AnomalyDataset(prepared.samples.get("val", []), size, mean, std)
        return train, val, None

    def model_ids(self) -> set[str]:
        memory = (f"{kind}_{b.id}" for kind in MEMORY_KINDS for b in backbones_with("memory"))
        return {*LEARNED_METHODS, *memory}

    def build_model(self, provenance: dict[str, Any]) -> Any:
        from workers.ml.tasks.anomaly.nets import build_detector

        model, _ = build_detector(
            str(provenance["model"]),
            image_size=int(provenance["image_size"]),
            mean=list(provenance["mean"]),
            std=list(provenance["std"]),
            pretrained=False,  # the checkpoint holds every weight and statistic
            arch=provenance.get("arch"),
        )
        return model

    def model_info(self, provenance: dict[str, Any]) -> dict[str, Any]:
        info = dict(provenance.get("task_info") or {})
        info.update({k: provenance[k] for k in CALIBRATION_FACTS if provenance.get(k) is not None})
        return info


register_task_code(AnomalyCode())
