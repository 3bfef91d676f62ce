"""Regression, the code half: one output per target, z-scored targets, de-normalised outputs.

Targets are the `value` annotations' numbers with their names; training z-scores them with the
train subset's mean and standard deviation (`info`: targets, target_mean, target_std, stored in
the checkpoint). The network predicts z-scores; evaluation de-normalises, and the export puts
the de-normalisation in the graph, so an ONNX file's `values` output is in target units.
This __init__ stays free of torch (the predictor imports it for the decoder).
"""

from __future__ import annotations

from typing import Any

from workers.ml.tasks import register_task_code
from workers.ml.tasks.base import Prepared, Sample, TaskCode
from workers.ml.tasks.regression.decode import RegressionDecoder, sample_values


class RegressionCode(TaskCode):
    key = "regression"
    decoder = RegressionDecoder()

    def prepare(
        self, samples: dict[str, list[Sample]], classes: list[str], config: dict[str, Any]
    ) -> Prepared:
        """Targets from the value annotations (names from the first image that has them);
        images without every target are left out. Mean/std come from train only."""
        names: list[str] = []
        for rows in samples.values():
            for sample in rows:
                found = sample_values(sample)
                if found is not None and not names:
                    names = found[0]
        kept: dict[str, list[Sample]] = {}
        dropped: dict[str, int] = {}
        for subset, rows in samples.items():
            kept[subset] = []
            for sample in rows:
                found = sample_values(sample)
                if found is not None and len(found[1]) == len(names):
                    sample.target = found[1]
                    kept[subset].append(sample)
            dropped[subset] = len(rows) - len(kept[subset])
        train = [s.target for s in kept.get("train", [])]
        mean, std = [0.0] * len(names), [1.0] * len(names)
        if train and config.get("normalize_targets", True):
            import numpy as np

            values = np.asarray(train, dtype=np.float64)
            mean = values.mean(axis=0).tolist()
            spread = values.std(axis=0)
            std = [float(s) if s > 1e-12 else 1.0 for s in spread]
        notes = []
        if any(dropped.values()):
            notes.append(
                f"Left out {sum(dropped.values())} image(s) without all {len(names)} target(s)."
            )
        info = {"targets": names, "target_mean": mean, "target_std": std}
        return Prepared(samples=kept, info=info, dropped=dropped, notes=notes)

    def build_module(self, config: dict[str, Any], classes: list[str], info: dict[str, Any]) -> Any:
        from workers.ml.tasks.regression.module import RegressionModule

        return RegressionModule(config, info)

    def datasets(
        self,
        prepared: Prepared,
        config: dict[str, Any],
        classes: list[str],
        info: dict[str, Any],
        normalization: tuple[list[float], list[float]],
    ) -> tuple[Any, Any, None]:
        from workers.ml.tasks.regression.module import ValueDataset
        from workers.ml.transforms import EvalTransform, TrainTransform

        mean, std = normalization
        size = int(config["image_size"])
        train = ValueDataset(
            prepared.samples.get("train", []),
            TrainTransform(size, mean, std, config["augment"]),
            info,
        )
        val = ValueDataset(prepared.samples.get("val", []), EvalTransform(size, mean, std), info)
        return train, val, None

    def model_ids(self) -> set[str]:
        from workers.ml.backbones import backbone_ids

        return set(backbone_ids("embedding"))  # a value head goes on any image embedding

    def build_model(self, provenance: dict[str, Any]) -> Any:
        from workers.ml.heads import build_classifier

        targets = (provenance.get("task_info") or {}).get("targets") or []
        model, _ = build_classifier(
            provenance["model"], len(targets), pretrained=False, arch=provenance.get("arch")
        )
        return model


register_task_code(RegressionCode())
