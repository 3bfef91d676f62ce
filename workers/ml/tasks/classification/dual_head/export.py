"""Dual-head export: both heads as named outputs (`logits`, `masks` = per-channel
probabilities at the input side); parity is classification's, on the logits."""

from __future__ import annotations

from workers.ml.tasks.base import ExportModule, InferenceModel
from workers.ml.tasks.classification.dual_head.net import ExportedDualHead
from workers.ml.tasks.classification.export import export_module as classifier_export


def export_module(model: InferenceModel) -> ExportModule:
    base = classifier_export(model)
    seg = model.info["segmentation"]
    return ExportModule(
        module=ExportedDualHead(model.model),  # type: ignore[arg-type]
        output_names=["logits", "masks"],
        postprocess={
            **base.postprocess,
            "masks": "per-channel probabilities "
            + ("(softmax; background = 1 - sum)" if seg["exclusive"] else "(sigmoid)"),
            "channels": list(seg["channels"]),
            "gate": "workers/ml/tasks/classification/dual_head/gate.py",
        },
    )
