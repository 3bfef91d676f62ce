"""Running an exported file the way a deployment would: onnxruntime or torch.jit.load.

Every runner takes a preprocessed NCHW float32 batch and returns the outputs by name; the
batch helper splits them into one dict per image, so tasks compare and decode per image
whatever their output shapes (logits per batch, a variable number of boxes per image).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

Outputs = dict[str, np.ndarray]
Runner = Callable[[np.ndarray], Outputs]


def worker_threads() -> int:
    return max(1, int(os.environ.get("STUDIO_WORKER_THREADS", "0") or 0) or (os.cpu_count() or 1))


def onnx_session(path: Path, threads: int | None = None):  # type: ignore[no-untyped-def]
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or worker_threads()
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_runner(path: Path, threads: int | None = None) -> Runner:
    session = onnx_session(path, threads)
    name = session.get_inputs()[0].name
    names = [o.name for o in session.get_outputs()]

    def run(batch: np.ndarray) -> Outputs:
        values = session.run(None, {name: batch.astype(np.float32, copy=False)})
        return {n: np.asarray(v) for n, v in zip(names, values, strict=True)}

    return run


def named(outputs: Any, names: list[str]) -> Outputs:
    """A module's return value (tensor, tuple/list or dict of tensors) by output name."""
    if isinstance(outputs, dict):
        return {k: _array(v) for k, v in outputs.items()}
    if not isinstance(outputs, list | tuple):
        outputs = [outputs]
    return {n: _array(v) for n, v in zip(names, outputs, strict=True)}


def _array(value: Any) -> np.ndarray:
    return np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value)


def torchscript_runner(path: Path, names: list[str]) -> Runner:
    import torch

    module = torch.jit.load(str(path), map_location="cpu").eval()

    def run(batch: np.ndarray) -> Outputs:
        with torch.no_grad():
            return named(module(torch.from_numpy(batch)), names)

    return run


def eager_runner(model, names: list[str]) -> Runner:  # type: ignore[no-untyped-def]
    import torch

    model = model.eval()

    def run(batch: np.ndarray) -> Outputs:
        with torch.no_grad():
            return named(model(torch.from_numpy(batch)), names)

    return run


def run_batched(
    runner: Runner, inputs: np.ndarray, batch_size: int = 32, *, fixed_batch: int | None = None
) -> list[Outputs]:
    """Run `inputs` through `runner` and return one outputs dict per image. Models exported
    with a fixed batch (`fixed_batch=1`) run image by image and keep their outputs whole."""
    per_image: list[Outputs] = []
    step = fixed_batch or batch_size
    for start in range(0, len(inputs), step):
        chunk = inputs[start : start + step]
        outputs = runner(chunk)
        if fixed_batch == 1:
            per_image.append(outputs)
        else:
            per_image.extend({k: v[i] for k, v in outputs.items()} for i in range(len(chunk)))
    return per_image
