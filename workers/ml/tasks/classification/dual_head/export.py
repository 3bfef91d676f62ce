"""Dual-head export: both heads as named outputs (`logits`, `masks` = per-channel
probabilities at the input side) and `embedding` (the gate's familiarity rule); parity is
classification's, on the logits."""

from __future__ import annotations

from workers.ml.tasks.base import ExportModule, InferenceModel
from workers.ml.tasks.classification.dual_head.net import ExportedDualHead
from workers.ml.tasks.classification.export import export_module as classifier_export


def export_module(model: InferenceModel) -> ExportModule:
    base = classifier_export(model)
    seg = model.info["segmentation"]
    return ExportModule(
        module=ExportedDualHead(model.model),  # type: ignore[arg-type]
        output_names=["logits", "masks", "embedding"],
        postprocess={
            **base.postprocess,
            "masks": "per-channel probabilities "
            + ("(softmax; background = 1 - sum)" if seg["exclusive"] else "(sigmoid)"),
            "channels": list(seg["channels"]),
            "embedding": "the image embedding the class head reads; the gate compares it with "
            "gate.feature_reference (RMS distance in training standard deviations to the "
            "nearest class mean)",
            "gate": "workers/ml/tasks/classification/dual_head/gate.py",
        },
    )
