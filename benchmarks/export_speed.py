"""onnxruntime (fp32 and dynamic INT8) against PyTorch eager on the CPU, same model.

    .venv/bin/python benchmarks/export_speed.py [--models resnet18,mobilenet_v3_small]
        [--size 64] [--threads 1] [--seconds 3]

Each model is exported through the studio's own export code (workers/ml/export), then run
at batch 1 (latency: median and p90 of single calls) and batch 32 (throughput: images/s).
Random weights: speed does not depend on them. Prints a Markdown table for
benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workers.ml.export import formats
from workers.ml.export.runtime import onnx_runner
from workers.ml.export.spec import DEFAULT_OPSET, ExportSpec


def build(name: str, classes: int) -> torch.nn.Module:
    if name == "tiny_cnn":
        return torch.nn.Sequential(
            torch.nn.Conv2d(3, 16, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(16, 32, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1),
            torch.nn.Flatten(),
            torch.nn.Linear(32, classes),
        )
    import torchvision

    return getattr(torchvision.models, name)(weights=None, num_classes=classes)


def timed(run: Callable[[], object], seconds: float, min_runs: int = 5) -> list[float]:
    run()  # warm-up
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(times) < min_runs or time.perf_counter() < deadline:
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


def measure(runner: Callable[[np.ndarray], object], size: int, seconds: float) -> dict[str, float]:
    one = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
    many = np.random.default_rng(1).standard_normal((32, 3, size, size)).astype(np.float32)
    lat = timed(lambda: runner(one), seconds)
    thr = timed(lambda: runner(many), seconds)
    return {
        "b1_median_ms": statistics.median(lat) * 1000,
        "b1_p90_ms": sorted(lat)[int(0.9 * (len(lat) - 1))] * 1000,
        "b32_img_per_s": 32 / statistics.median(thr),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="tiny_cnn,mobilenet_v3_small,resnet18")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for name in args.models.split(","):
        torch.manual_seed(0)
        model = build(name, 10).eval()
        spec = ExportSpec(
            task="classification",
            classes=[str(i) for i in range(10)],
            image_size=args.size,
            mean=[0.5] * 3,
            std=[0.25] * 3,
            output_names=["logits"],
        )
        meta = spec.metadata(fmt="onnx", opset=DEFAULT_OPSET)
        with tempfile.TemporaryDirectory() as tmp:
            fp32, int8 = Path(tmp) / "m.onnx", Path(tmp) / "q.onnx"
            formats.export_onnx(model, fp32, spec=spec, metadata=meta, opset=DEFAULT_OPSET)
            formats.quantize_int8(fp32, int8, metadata={**meta, "format": "onnx_int8"})

            def eager(batch: np.ndarray, model: torch.nn.Module = model) -> object:
                with torch.inference_mode():
                    return model(torch.from_numpy(batch))

            results = {
                "torch eager": measure(eager, args.size, args.seconds),
                "onnxruntime fp32": measure(
                    onnx_runner(fp32, args.threads), args.size, args.seconds
                ),
                "onnxruntime int8": measure(
                    onnx_runner(int8, args.threads), args.size, args.seconds
                ),
            }
            sizes = {"fp32": fp32.stat().st_size, "int8": int8.stat().st_size}
        rows.append((name, results, sizes))

    print(f"\nCPU, {args.threads} thread(s), {args.size}x{args.size} px, torch {torch.__version__}")
    print(
        "\n| model | runtime | batch 1 median ms | batch 1 p90 ms | batch 32 img/s | "
        "speed-up b1 | speed-up b32 |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, results, _sizes in rows:
        base = results["torch eager"]
        for runtime, r in results.items():
            s1 = base["b1_median_ms"] / r["b1_median_ms"]
            s32 = r["b32_img_per_s"] / base["b32_img_per_s"]
            print(
                f"| {name} | {runtime} | {r['b1_median_ms']:.2f} | {r['b1_p90_ms']:.2f} | "
                f"{r['b32_img_per_s']:.0f} | {s1:.2f}x | {s32:.2f}x |"
            )
    print("\n| model | fp32 ONNX bytes | int8 ONNX bytes |")
    print("|---|---:|---:|")
    for name, _results, sizes in rows:
        print(f"| {name} | {sizes['fp32']:,} | {sizes['int8']:,} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
