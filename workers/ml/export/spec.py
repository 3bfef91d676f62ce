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


@dataclass
class ExportSpec:
    """Everything a deployment needs to feed the model and read its outputs.

    `output_names` and `postprocess` come from the task's ExportModule; `batch` is None for a
    dynamic batch axis, 1 for models exported one image at a time; `info` holds the task facts
    a decoder needs (multi-label and its thresholds, score thresholds...), written at the top
    level of the metadata."""

    task: str
    classes: list[str]
    image_size: int
    mean: list[float]
    std: list[float]
    output_names: list[str] = field(default_factory=lambda: ["output"])
    channels: int = 3
    batch: int | None = None
    postprocess_spec: dict[str, Any] = field(default_factory=dict)
    # Dynamic axes per output besides the batch axis (e.g. {"boxes": {0: "detections"}});
    # None: axis 0 of every output is the batch.
    output_axes: dict[str, dict[int, str]] | None = None
    script: bool = False  # TorchScript: script instead of trace (data-dependent control flow)
    info: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

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

    def metadata(self, *, fmt: str, opset: int | None, **extra: Any) -> dict[str, Any]:
        return {
            "format": fmt,
            "task": self.task,
            "classes": list(self.classes),
            "num_classes": len(self.classes),
            **self.info,
            "input": {
                "name": INPUT_NAME,
                "shape": [
                    "batch" if self.batch is None else self.batch,
                    self.channels,
                    self.image_size,
                    self.image_size,
                ],
                "dtype": "float32",
                "batch": "dynamic" if self.batch is None else self.batch,
            },
            "outputs": self.output_names,
            "preprocess": self.preprocess(),
            "postprocess": self.postprocess_spec,
            "opset": opset,
            **self.extra,
            **extra,
        }


def metadata_props(metadata: dict[str, Any]) -> dict[str, str]:
    """ONNX metadata_props are str → str: the whole record under one key, the common fields
    under their own so a viewer (Netron, onnxruntime's custom_metadata_map) shows them."""
    props = {"studio.metadata": json.dumps(metadata, sort_keys=True)}
    for key in (
        "task",
        "classes",
        "preprocess",
        "postprocess",
        "outputs",
        "multi_label",
        "thresholds",
    ):
        if key not in metadata:
            continue
        value = metadata.get(key)
        props[key] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    if "studio_version" in metadata:
        props["studio_version"] = str(metadata["studio_version"])
    return props
