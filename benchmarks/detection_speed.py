"""Detection speed: the studio's training throughput against a plain torchvision loop, and
the exported default detector in onnxruntime against PyTorch eager.

throughput: the same detector (default fcos_small), data (the synthetic benchmark), batch,
optimizer and schedule; epochs alternate between the two so load changes on a shared machine
hit both; the first epoch of each (image decoding, warm-up) is left out. Goal: studio / plain
≥ 0.9.
latency: one exported ONNX file (the legacy exporter, batch 1, as the studio exports it) and
the eager model on the same preprocessed images; "batch 8" is eight images one after the
other (detectors export with batch 1). Reports medians in ms and the ratio.

    python benchmarks/detection_speed.py throughput --images 160 --epochs 3 --rounds 2
    python benchmarks/detection_speed.py latency --repeats 30
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from app.services.experiments import default_config  # noqa: E402
from benchmarks.synthetic import write_dataset  # noqa: E402
from benchmarks.task_quality import split, studio_samples  # noqa: E402
from workers.ml.module import schedule_factor  # noqa: E402
from workers.ml.tasks import get_task_code  # noqa: E402
from workers.ml.tasks.detection.data import DetectionDataset, collate  # noqa: E402
from workers.ml.tasks.detection.models import build_detector  # noqa: E402
from workers.ml.train import FitRequest, _loader, cpu_threads, fit  # noqa: E402
from workers.ml.transforms import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402


def prepared_data(images: int, size: int):  # type: ignore[no-untyped-def]
    folder = Path(tempfile.mkdtemp()) / "det"
    info = write_dataset("detection", folder, images=images, size=size, seed=0)
    samples, classes = studio_samples(folder, "detection", info["format"])
    parts = split(samples, 0)
    config = default_config("detection")
    return get_task_code("detection").prepare(parts, classes, config), classes, config


def plain_rates(prepared, classes, config) -> list[float]:  # type: ignore[no-untyped-def]
    torch.manual_seed(config["seed"])
    torch.set_num_threads(cpu_threads())
    size = int(config["image_size"])
    dataset = DetectionDataset(
        prepared.samples["train"], size, IMAGENET_MEAN, IMAGENET_STD, config["augment"]
    )
    loader = _loader(dataset, config["batch_size"], 0, True, config["seed"], collate)
    model, _ = build_detector(config["model"], len(classes), size, config, pretrained=False)
    model.train()
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config["lr"], weight_decay=config["weight_decay"]
    )
    total = len(loader) * config["epochs"]
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, schedule_factor(config, len(loader), total)
    )
    rates = []
    for _ in range(config["epochs"]):
        started, seen = time.monotonic(), 0
        for images, targets, _ in loader:
            loss = sum(model(list(images), targets).values())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[union-attr]
            optimizer.step()
            scheduler.step()
            seen += len(images)
        rates.append(seen / (time.monotonic() - started))
    return rates


def studio_rates(prepared, classes, config) -> list[float]:  # type: ignore[no-untyped-def]
    with tempfile.TemporaryDirectory() as out:
        val = prepared.samples["val"]
        prepared.samples["val"] = []  # a plain loop does not validate either
        try:
            result = fit(FitRequest("detection", config, classes, prepared, Path(out)))
        finally:
            prepared.samples["val"] = val
    return [e["metrics"]["images_per_s"] for e in result.history]


def throughput(args: argparse.Namespace) -> None:
    prepared, classes, config = prepared_data(args.images, args.size)
    config = {**config, "epochs": args.epochs}
    studio: list[float] = []
    plain: list[float] = []
    for _ in range(args.rounds):
        plain += plain_rates(prepared, classes, config)[1:]
        studio += studio_rates(prepared, classes, config)[1:]
    ratio = statistics.median(studio) / statistics.median(plain)
    print(
        json.dumps(
            {
                "benchmark": "detection training throughput",
                "model": config["model"],
                "image_size": config["image_size"],
                "batch_size": config["batch_size"],
                "studio_images_per_s": round(statistics.median(studio), 2),
                "plain_images_per_s": round(statistics.median(plain), 2),
                "ratio": round(ratio, 3),
                "load": os.getloadavg(),
            }
        )
    )


def latency(args: argparse.Namespace) -> None:
    import numpy as np

    from workers.ml.export.formats import export_onnx
    from workers.ml.export.runtime import onnx_session
    from workers.ml.export.spec import ExportSpec
    from workers.ml.tasks.detection.export import OUTPUTS, ExportedDetector

    torch.set_num_threads(cpu_threads())
    config = default_config("detection")
    size = int(config["image_size"])
    model, _ = build_detector(config["model"], 3, size, config, pretrained=False)
    wrapped = ExportedDetector(model.eval()).eval()
    spec = ExportSpec(
        "detection",
        ["a", "b", "c"],
        size,
        IMAGENET_MEAN,
        IMAGENET_STD,
        list(OUTPUTS),
        batch=1,
        output_axes={n: {0: "detections"} for n in OUTPUTS},
    )
    rng = np.random.default_rng(0)
    images = rng.standard_normal((8, 3, size, size)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "det.onnx"
        export_onnx(
            wrapped, path, spec=spec, metadata=spec.metadata(fmt="onnx", opset=17), opset=17
        )
        session = onnx_session(path, threads=cpu_threads())

        def timed(run, count: int) -> float:  # type: ignore[no-untyped-def]
            samples = []
            for _ in range(args.repeats):
                started = time.perf_counter()
                for i in range(count):
                    run(images[i : i + 1])
                samples.append((time.perf_counter() - started) * 1000)
            return statistics.median(samples)

        def eager(x):  # type: ignore[no-untyped-def]
            with torch.inference_mode():
                return wrapped(torch.from_numpy(x))

        def ort(x):  # type: ignore[no-untyped-def]
            return session.run(None, {"input": x})

        for fn in (eager, ort):
            fn(images[:1])  # warm-up
        rows = {}
        for count in (1, 8):
            torch_ms, ort_ms = timed(eager, count), timed(ort, count)
            rows[f"batch_{count}"] = {
                "torch_ms": round(torch_ms, 2),
                "onnxruntime_ms": round(ort_ms, 2),
                "speedup": round(torch_ms / ort_ms, 2),
            }
    print(
        json.dumps(
            {
                "benchmark": "detection latency",
                "model": config["model"],
                "image_size": size,
                **rows,
                "load": os.getloadavg(),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("throughput", "latency"))
    parser.add_argument("--images", type=int, default=160)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    throughput(args) if args.mode == "throughput" else latency(args)


if __name__ == "__main__":
    main()
