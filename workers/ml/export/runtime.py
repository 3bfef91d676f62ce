"""Running an exported file the way a deployment would: onnxruntime or torch.jit.load."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

Runner = Callable[[np.ndarray], np.ndarray]


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

    def run(batch: np.ndarray) -> np.ndarray:
        return np.asarray(session.run(None, {name: batch.astype(np.float32, copy=False)})[0])

    return run


def torchscript_runner(path: Path) -> Runner:
    import torch

    module = torch.jit.load(str(path), map_location="cpu").eval()

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return np.asarray(module(torch.from_numpy(batch)).numpy())

    return run


def eager_runner(model) -> Runner:  # type: ignore[no-untyped-def]
    import torch

    model = model.eval()

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return np.asarray(model(torch.from_numpy(batch)).float().numpy())

    return run


def run_batched(runner: Runner, inputs: np.ndarray, batch_size: int = 32) -> np.ndarray:
    parts = [runner(inputs[i : i + batch_size]) for i in range(0, len(inputs), batch_size)]
    return np.concatenate(parts) if parts else np.zeros((0,), dtype=np.float32)
