"""Studio training throughput vs a plain PyTorch loop: same model, data, transforms, batch size,
optimizer, scheduler, threads and loader workers; training images/s per epoch (no validation).

    .venv/bin/python benchmarks/train_throughput.py [--epochs 3] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import torch.nn.functional as F  # noqa: N812
from train_common import digits_samples, fit_request, plain_rates, stratified_split

from app.services.experiments import default_config
from workers.ml.data import ImageDataset
from workers.ml.heads import build_classifier
from workers.ml.train import cpu_threads, fit
from workers.ml.transforms import IMAGENET_MEAN, IMAGENET_STD, TrainTransform

CLASSES = [str(i) for i in range(10)]


def studio_rates(config: dict, train: list, out: Path) -> list[float]:
    result = fit(fit_request(config, CLASSES, train, [], out))
    return [e["metrics"]["images_per_s"] for e in result.history]


def plain_loop(config: dict, train: list) -> list[float]:
    size = config["image_size"]
    dataset = ImageDataset(
        train, TrainTransform(size, IMAGENET_MEAN, IMAGENET_STD, config["augment"])
    )
    model, _ = build_classifier(config["model"], len(CLASSES), pretrained=False)
    return plain_rates(config, dataset, model, lambda m, x, y: F.cross_entropy(m(x), y))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "digits-png")
    args = parser.parse_args()
    train, _, _ = stratified_split(digits_samples(args.data))
    config = default_config("classification")
    config["epochs"] = args.epochs
    studio, plain = [], []
    for _ in range(args.rounds):  # interleaved, so load changes on a shared box hit both
        plain += plain_loop(config, train)[1:]  # first epoch decodes and caches the images
        with tempfile.TemporaryDirectory() as out:
            studio += studio_rates(config, train, Path(out))[1:]
    report = {
        "model": config["model"],
        "batch_size": config["batch_size"],
        "images": len(train),
        "threads": cpu_threads(),
        "plain_images_per_s": round(statistics.median(plain), 1),
        "studio_images_per_s": round(statistics.median(studio), 1),
        "ratio": round(statistics.median(studio) / statistics.median(plain), 3),
        "plain_epochs": [round(r, 1) for r in plain],
        "studio_epochs": [round(r, 1) for r in studio],
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
