"""One export end to end: write the file, run it, compare with the checkpoint, report."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workers.ml.export import formats, runtime
from workers.ml.export.spec import DEFAULT_OPSET, FORMATS, ExportSpec

Report = Callable[[str], None]
# (format, checkpoint outputs per image, exported-file outputs per image, metadata) → report
Compare = Callable[
    [str, list[runtime.Outputs], list[runtime.Outputs], dict[str, Any]], dict[str, Any]
]


def run_export(
    model: torch.nn.Module,
    *,
    spec: ExportSpec,
    fmt: str,
    path: Path,
    inputs: np.ndarray,
    compare: Compare,
    opset: int | None = None,
    metadata_extra: dict[str, Any] | None = None,
    report: Report | None = None,
) -> dict[str, Any]:
    """Export `model` as `fmt` to `path`, run both on `inputs` (preprocessed, NCHW float32)
    and let the task's `compare` judge the outputs. Returns {"path", "bytes", "valid",
    "validation", "metadata"}."""
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r} is unknown; use one of {sorted(FORMATS)}")
    say = report or (lambda _message: None)
    opset = opset or DEFAULT_OPSET
    uses_onnx = fmt.startswith("onnx")
    metadata = spec.metadata(fmt=fmt, opset=opset if uses_onnx else None, **(metadata_extra or {}))
    started = time.perf_counter()
    model = model.eval().cpu()
    if fmt == "onnx":
        say("Exporting to ONNX")
        formats.export_onnx(model, path, spec=spec, metadata=metadata, opset=opset)
    elif fmt == "onnx_int8":
        say("Exporting to ONNX (fp32) before quantization")
        fp32 = path.with_name(path.stem + ".fp32.onnx")
        try:
            formats.export_onnx(model, fp32, spec=spec, metadata=metadata, opset=opset)
            say("Quantizing weights to INT8")
            formats.quantize_int8(fp32, path, metadata=metadata)
        finally:
            fp32.unlink(missing_ok=True)
    else:
        say("Tracing to TorchScript")
        formats.export_torchscript(model, path, spec=spec, metadata=metadata)
    export_seconds = time.perf_counter() - started

    say(f"Comparing outputs on {len(inputs)} images")
    names = spec.output_names
    reference = runtime.run_batched(
        runtime.eager_runner(model, names), inputs, fixed_batch=spec.batch
    )
    runner = runtime.onnx_runner(path) if uses_onnx else runtime.torchscript_runner(path, names)
    candidate = runtime.run_batched(runner, inputs, fixed_batch=spec.batch)
    validation = compare(fmt, reference, candidate, metadata)
    validation["runtime"] = _runtime_name(fmt)
    validation["export_seconds"] = round(export_seconds, 3)
    return {
        "path": path,
        "bytes": path.stat().st_size,
        "valid": bool(validation["valid"]),
        "validation": validation,
        "metadata": metadata,
    }


def _runtime_name(fmt: str) -> str:
    if fmt.startswith("onnx"):
        import onnxruntime

        return f"onnxruntime {onnxruntime.__version__} (CPUExecutionProvider)"
    return f"torch.jit {torch.__version__}"
