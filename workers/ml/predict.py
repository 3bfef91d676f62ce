"""Prediction with an exported ONNX file: PIL + numpy preprocessing from the file's own
metadata, onnxruntime, per-task decoding. Imports no torch, so a predict worker starts fast.

Every result shares one envelope: {"ok", "file", "task", "image": {"width", "height"}} plus
the task's fields (classification: "top" and "labels"; detection: "objects"), in the pixels
of the original image."""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from workers.ml.export.runtime import onnx_session
from workers.ml.tasks import get_task_code

MAX_PIXELS = 40_000_000
_RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "nearest": Image.Resampling.NEAREST}


class BadImage(ValueError):
    """An input that is not a decodable image; reported per image, never fatal for the batch."""


def open_image(path: Path) -> Image.Image:
    """Decode fully (load(), not verify(), which misses truncation), apply EXIF orientation,
    and treat decompression-bomb warnings as errors."""
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
                oriented = ImageOps.exif_transpose(image)
                return oriented.copy() if oriented is image else oriented
    except (
        OSError,
        ValueError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ) as exc:
        # PIL's messages name the file, and that is a path inside the workspace: keep it out.
        reason = str(exc).replace(str(path), "the file")
        raise BadImage(f"not a readable image: {reason}") from None


def preprocess(image: Image.Image, spec: dict[str, Any]) -> np.ndarray:
    """The metadata's preprocessing: RGB, resize, 0-1 float32, normalize, CHW."""
    width, height = spec["resize"][1], spec["resize"][0]
    rgb = image.convert("RGB")
    resized = rgb.resize((width, height), _RESAMPLE[spec.get("interpolation", "bilinear")])
    array = np.asarray(resized, dtype=np.float32) / np.float32(255.0)
    mean = np.asarray(spec["mean"], dtype=np.float32)
    std = np.asarray(spec["std"], dtype=np.float32)
    return ((array - mean) / std).transpose(2, 0, 1).astype(np.float32)


class Predictor:
    """One loaded ONNX model; predict() takes a batch of image files and runs them together."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        started = time.perf_counter()
        self.session = onnx_session(path, threads)
        custom = self.session.get_modelmeta().custom_metadata_map
        if "studio.metadata" not in custom:
            raise ValueError(f"{path.name} carries no studio metadata; export it again.")
        self.meta: dict[str, Any] = json.loads(custom["studio.metadata"])
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.task = str(self.meta["task"])
        self.decoder = get_task_code(self.task).decoder
        # Models exported one image at a time (detectors) run image by image.
        batch = (self.meta.get("input") or {}).get("batch", "dynamic")
        self.fixed_batch = None if batch in (None, "dynamic") else int(batch)
        self.load_seconds = time.perf_counter() - started

    def _run(self, batch: np.ndarray) -> list[dict[str, np.ndarray]]:
        step = self.fixed_batch or len(batch)
        per_image: list[dict[str, np.ndarray]] = []
        for start in range(0, len(batch), step):
            chunk = batch[start : start + step]
            values = self.session.run(None, {self.input_name: chunk})
            outputs = dict(zip(self.output_names, (np.asarray(v) for v in values), strict=True))
            if self.fixed_batch == 1:
                per_image.append(outputs)
            else:
                per_image.extend({k: v[i] for k, v in outputs.items()} for i in range(len(chunk)))
        return per_image

    def predict(
        self, files: list[Path], *, options: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Decode every file; unreadable ones get {"ok": false, "error"} and never stop the
        batch. `options`: top_k (classification), score_threshold (detectors)."""
        options = dict(options or {})
        started = time.perf_counter()
        arrays: list[np.ndarray] = []
        slots: list[int] = []
        sizes: list[tuple[int, int]] = []
        results: list[dict[str, Any]] = [{} for _ in files]
        for position, path in enumerate(files):
            try:
                image = open_image(path)
                arrays.append(preprocess(image, self.meta["preprocess"]))
                slots.append(position)
                sizes.append(image.size)
            except BadImage as exc:
                results[position] = {
                    "ok": False,
                    "task": self.task,
                    "error": {"code": "bad_image", "message": str(exc)},
                }
        decode_started = time.perf_counter()
        inference_ms = 0.0
        if arrays:
            run_started = time.perf_counter()
            outputs = self._run(np.stack(arrays))
            inference_ms = (time.perf_counter() - run_started) * 1000
            for position, item, size in zip(slots, outputs, sizes, strict=True):
                fields = self.decoder.decode(item, meta=self.meta, size=size, options=options)
                results[position] = {
                    "ok": True,
                    "task": self.task,
                    "image": {"width": size[0], "height": size[1]},
                    **fields,
                }
        return {
            "results": results,
            "timing": {
                "preprocess_ms": round((decode_started - started) * 1000, 2),
                "inference_ms": round(inference_ms, 2),
                "total_ms": round((time.perf_counter() - started) * 1000, 2),
                "batch_size": len(arrays),
            },
        }
