"""What an export needs to know about a model besides its weights, and the metadata it writes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

# format key → (file suffix, runtime). Handlers, the API and the page use the same keys.
FORMATS: dict[str, tuple[str, str]] = {
    "onnx": (".onnx", "onnxruntime"),
    "onnx_int8": (".onnx", "onnxruntime"),
    "torchscript": (".pt", "torchscript"),
}

DEFAULT_OPSET = 17  # the legacy exporter's best-tested opset; onnxruntime 1.32 runs 7..23
OPSETS = range(13, 21)
INPUT_NAME = "input"
OUTPUT_NAMES = {"classification": ["logits"]}


@dataclass
class ExportSpec:
    """Everything a deployment needs to feed the model and read its outputs."""

    task: str
    classes: list[str]
    image_size: int
    mean: list[float]
    std: list[float]
    channels: int = 3
    multi_label: bool = False
    thresholds: list[float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def output_names(self) -> list[str]:
        return OUTPUT_NAMES.get(self.task, ["output"])

    def preprocess(self) -> dict[str, Any]:
        """The exact eval transform, written so a numpy + PIL script can reproduce it."""
        return {
            "resize": [self.image_size, self.image_size],
            "interpolation": "bilinear",
            "mean": list(self.mean),
            "std": list(self.std),
            "channel_order": "RGB",
            "scale": "0-1",
            "layout": "NCHW",
            "dtype": "float32",
            "convert": "RGB",
            "steps": [
                "PIL: apply EXIF orientation, convert('RGB')",
                "PIL: resize to (width, height) = resize with Image.BILINEAR",
                "to float32, divide by 255",
                "subtract mean, divide by std per channel",
                "HWC → CHW, add batch axis",
            ],
        }

    def postprocess(self) -> dict[str, Any]:
        if self.task == "classification":
            return {
                "activation": "sigmoid" if self.multi_label else "softmax",
                "decision": "score >= threshold per class" if self.multi_label else "argmax",
            }
        return {}

    def metadata(self, *, fmt: str, opset: int | None, **extra: Any) -> dict[str, Any]:
        return {
            "format": fmt,
            "task": self.task,
            "classes": list(self.classes),
            "num_classes": len(self.classes),
            "multi_label": self.multi_label,
            "thresholds": self.thresholds,
            "input": {
                "name": INPUT_NAME,
                "shape": ["batch", self.channels, self.image_size, self.image_size],
                "dtype": "float32",
            },
            "outputs": self.output_names,
            "preprocess": self.preprocess(),
            "postprocess": self.postprocess(),
            "opset": opset,
            **self.extra,
            **extra,
        }


def metadata_props(metadata: dict[str, Any]) -> dict[str, str]:
    """ONNX metadata_props are str → str: the whole record under one key, the common fields
    under their own so a viewer (Netron, onnxruntime's custom_metadata_map) shows them."""
    props = {"studio.metadata": json.dumps(metadata, sort_keys=True)}
    for key in ("task", "classes", "preprocess", "postprocess", "multi_label", "thresholds"):
        value = metadata.get(key)
        props[key] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    if "studio_version" in metadata:
        props["studio_version"] = str(metadata["studio_version"])
    return props
