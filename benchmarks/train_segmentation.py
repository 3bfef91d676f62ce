"""Semantic segmentation on the published synthetic scenes (benchmarks/synthetic/segmentation.py):

    .venv/bin/python benchmarks/train_segmentation.py quality     # default recipe → test mIoU
    .venv/bin/python benchmarks/train_segmentation.py throughput  # studio vs a plain loop
    .venv/bin/python benchmarks/train_segmentation.py latency     # onnxruntime vs torch eager

quality: --images scenes (600) of --size px (96), split 80/10/10 at random (seed 0); the
task's default recipe (app.services.experiments.default_config) trained by the studio's
fit(), the best checkpoint scored by the studio's evaluation on the test images. Prints every
epoch (steps, seconds, val/miou) and the totals: optimizer steps, median seconds per step,
training wall time and CPU time, test mIoU with and without background. The target: test
mIoU ≥ 0.9 within 10 minutes of training on 2 CPU cores. Wall time on a shared machine
depends on the load (printed); the CPU time of the training process (one intra-op thread on 2
cores) is what the wall time is on a quiet machine.

throughput: the same model, data, transforms, batch size, optimizer, schedule and threads in
fit() and in a plain PyTorch loop (no validation); training images/s per epoch, the first
epoch (decoding and caching) left out, rounds interleaved.

latency: the default model exported to ONNX; median ms per image batch for onnxruntime and
torch eager on the same preprocessed inputs (batch 1 and 16).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.synthetic import write_dataset  # noqa: E402
from benchmarks.train_common import plain_rates  # noqa: E402
from workers.ml.tasks.base import Ann, Prepared, Sample  # noqa: E402

TASK = "segmentation"


def load(root: Path, images: int, size: int, seed: int = 0) -> tuple[list[Sample], list[str]]:
    """The generator's folder as studio samples: one mask annotation per class present, as the
    import writes them (stored values = class indices, pixel counts recorded)."""
    if not (root / "class_names.txt").exists() or len(list((root / "images").glob("*"))) != images:
        write_dataset(TASK, root, images=images, size=size, seed=seed)
    classes = (root / "class_names.txt").read_text().split()
    samples = []
    for index, image in enumerate(sorted((root / "images").glob("*.png"))):
        mask = root / "masks" / image.name
        values, counts = np.unique(np.asarray(Image.open(mask)), return_counts=True)
        annotations = [
            Ann("mask", classes[v], {"file": str(mask), "index": int(v)}, {"pixels": int(n)})
            for v, n in zip(values.tolist(), counts.tolist(), strict=True)
            if v < len(classes)
        ]
        samples.append(Sample(index, image, width=size, height=size, annotations=annotations))
    return samples, classes


def split(samples: list[Sample], seed: int = 0) -> dict[str, list[Sample]]:
    order = list(samples)
    random.Random(seed).shuffle(order)
    n = len(order)
    cut1, cut2 = int(0.8 * n), int(0.9 * n)
    parts = {"train": order[:cut1], "val": order[cut1:cut2], "test": order[cut2:]}
    for subset, rows in parts.items():
        for sample in rows:
            sample.subset = subset
    return parts


def torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def load_avg() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def quality(args: argparse.Namespace) -> None:
    from app.services.experiments import default_config
    from workers.ml.checkpoints import load_for_inference
    from workers.ml.tasks import get_task_code
    from workers.ml.train import FitRequest, fit

    samples, classes = load(args.data, args.images, args.size)
    parts = split(samples)
    config = default_config(TASK)
    config.update(json.loads(args.config))
    code = get_task_code(TASK)
    prepared = code.prepare(parts, classes, config)
    steps: list[tuple[int, float]] = []

    def report(event: dict[str, Any]) -> None:
        if event["type"] == "epoch":
            steps.append((event["step"], event["seconds"]))
            row = {
                "epoch": event["epoch"],
                "step": event["step"],
                "seconds": round(event["seconds"], 1),
                **{k: round(v, 4) for k, v in event["metrics"].items() if k.startswith("val/")},
                "load": load_avg(),
            }
            print(json.dumps(row), flush=True)

    with tempfile.TemporaryDirectory() as out:
        started, cpu_started = time.monotonic(), time.process_time()
        result = fit(
            FitRequest(TASK, config, classes, Prepared(prepared.samples, prepared.info), Path(out)),
            report,
        )
        seconds, cpu_seconds = time.monotonic() - started, time.process_time() - cpu_started
        model = load_for_inference(Path(out) / "best.ckpt")
        outcome = code.evaluate(model, prepared.samples["test"], options={})
    bounds = [(0, 0.0), *steps]
    per_step = [secs / (s1 - s0) for (s0, _), (s1, secs) in zip(bounds, steps) if s1 > s0]  # noqa: B905
    agg = outcome.aggregate
    print(
        json.dumps(
            {
                "model": config["model"],
                "image_size": config["image_size"],
                "batch_size": config["batch_size"],
                "epochs": result.epochs_done,
                "train_images": len(prepared.samples["train"]),
                "test_images": agg["samples"],
                "optimizer_steps": result.global_step,
                "median_s_per_step": round(statistics.median(per_step), 3),
                "train_wall_s": round(seconds, 1),
                # CPU time of the training process (all its threads): with the one intra-op
                # thread the studio uses on 2 cores, what the wall time is on a quiet machine.
                "train_cpu_s": round(cpu_seconds, 1),
                "cpu_s_per_step": round(cpu_seconds / max(1, result.global_step), 3),
                "threads": torch_threads(),
                "test_miou": round(agg["miou"], 4),
                "test_miou_no_bg": round(agg["miou_no_bg"], 4),
                "test_pixel_accuracy": round(agg["pixel_accuracy"], 4),
                "best_epoch": (result.best or {}).get("epoch"),
                "load_at_end": load_avg(),
            }
        )
    )


def throughput(args: argparse.Namespace) -> None:
    import torch

    from app.services.experiments import default_config
    from workers.ml.tasks import get_task_code
    from workers.ml.tasks.segmentation.data import SegmentationDataset
    from workers.ml.tasks.segmentation.losses import segmentation_loss
    from workers.ml.tasks.segmentation.models import build_segmenter
    from workers.ml.train import FitRequest, cpu_threads, fit
    from workers.ml.transforms import IMAGENET_MEAN, IMAGENET_STD

    samples, classes = load(args.data, args.images, args.size)
    config = default_config(TASK)
    config["epochs"] = args.epochs
    prepared = get_task_code(TASK).prepare({"train": split(samples)["train"]}, classes, config)
    train = prepared.samples["train"]

    def plain() -> list[float]:
        dataset = SegmentationDataset(
            train, config["image_size"], IMAGENET_MEAN, IMAGENET_STD, config["augment"]
        )
        model, _ = build_segmenter(config["model"], len(classes), pretrained=False)

        def loss_of(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return segmentation_loss(net(x), y, dice_weight=config["dice_weight"])[0]

        return plain_rates(config, dataset, model, loss_of)

    def studio() -> list[float]:
        with tempfile.TemporaryDirectory() as out:
            request = FitRequest(
                TASK, config, classes, Prepared({"train": train}, prepared.info), Path(out)
            )
            return [e["metrics"]["images_per_s"] for e in fit(request).history]

    plain_seen: list[float] = []
    studio_seen: list[float] = []
    for _ in range(args.rounds):  # interleaved, so load changes on a shared box hit both
        plain_seen += plain()[1:]
        studio_seen += studio()[1:]
    print(
        json.dumps(
            {
                "model": config["model"],
                "image_size": config["image_size"],
                "batch_size": config["batch_size"],
                "images": len(train),
                "threads": cpu_threads(),
                "plain_images_per_s": round(statistics.median(plain_seen), 1),
                "studio_images_per_s": round(statistics.median(studio_seen), 1),
                "ratio": round(statistics.median(studio_seen) / statistics.median(plain_seen), 3),
                "plain_epochs": [round(r, 1) for r in plain_seen],
                "studio_epochs": [round(r, 1) for r in studio_seen],
                "load": load_avg(),
            }
        )
    )


def latency(args: argparse.Namespace) -> None:
    import torch

    from app.services.experiments import default_config
    from workers.ml.export import formats
    from workers.ml.export.runtime import onnx_session
    from workers.ml.export.spec import ExportSpec
    from workers.ml.tasks.segmentation.models import build_segmenter
    from workers.ml.train import cpu_threads

    config = default_config(TASK)
    size = int(config["image_size"])
    torch.set_num_threads(cpu_threads())
    model, _ = build_segmenter(config["model"], 4, pretrained=False)
    model.eval()
    spec = ExportSpec(TASK, ["a", "b", "c", "d"], size, [0.5] * 3, [0.25] * 3, ["logits"])
    report: dict[str, Any] = {
        "model": config["model"],
        "image_size": size,
        "threads": cpu_threads(),
    }
    with tempfile.TemporaryDirectory() as out:
        path = Path(out) / "model.onnx"
        formats.export_onnx(
            model, path, spec=spec, metadata=spec.metadata(fmt="onnx", opset=17), opset=17
        )
        session = onnx_session(path, cpu_threads())
        for batch in (1, 16):
            x = np.random.default_rng(0).standard_normal((batch, 3, size, size)).astype(np.float32)
            with torch.inference_mode():
                eager = _median_ms(lambda x=x: model(torch.from_numpy(x)), args.repeats)
            ort = _median_ms(lambda x=x: session.run(None, {"input": x}), args.repeats)
            report[f"batch{batch}"] = {
                "torch_eager_ms": round(eager, 2),
                "onnxruntime_ms": round(ort, 2),
                "speedup": round(eager / ort, 2),
            }
    report["load"] = load_avg()
    print(json.dumps(report))


def _median_ms(call: Any, repeats: int) -> float:
    call()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=("quality", "throughput", "latency"))
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--data", type=Path, default=None, help="scenes folder (a temp one)")
    parser.add_argument("--config", default="{}", help="recipe overrides as JSON (quality)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per round (throughput)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (throughput)")
    parser.add_argument("--repeats", type=int, default=30, help="timed runs (latency)")
    args = parser.parse_args()
    if args.data is None:
        args.data = Path(tempfile.gettempdir()) / f"studio-seg-scenes-{args.images}-{args.size}"
    {"quality": quality, "throughput": throughput, "latency": latency}[args.what](args)


if __name__ == "__main__":
    main()
