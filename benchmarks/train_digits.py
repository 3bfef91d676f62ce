"""Digits accuracy with the default recipe: stratified 80/10/10, CPU, wall time of training.

.venv/bin/python benchmarks/train_digits.py [--epochs N] [--seeds 42,0,1]

Each split seed is one run: the split is the splits service's stratified algorithm, so a
seed here gives the same kind of split as the studio's split page with that seed.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from train_common import digits_samples, evaluate_checkpoint, fit_request, stratified_split

from app.services.experiments import default_config
from workers.ml.tasks.base import Sample
from workers.ml.train import fit


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--seeds", default="42", help="comma-separated split seeds")
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "digits-png")
    args = parser.parse_args()
    samples = digits_samples(args.data)
    for seed in (int(s) for s in args.seeds.split(",")):
        run(samples, seed, args.epochs)


def run(samples: list[Sample], seed: int, epochs: int | None) -> None:
    train, val, test = stratified_split(samples, seed)
    config = default_config("classification")
    if epochs:
        config["epochs"] = epochs
    classes = [str(i) for i in range(10)]
    with tempfile.TemporaryDirectory() as out:
        started = time.monotonic()
        result = fit(
            fit_request(config, classes, train, val, Path(out)),
            lambda e: (
                print(json.dumps({"epoch": e["epoch"], **e["metrics"]}), flush=True)
                if e["type"] == "epoch"
                else None
            ),
        )
        seconds = time.monotonic() - started
        metrics = evaluate_checkpoint(Path(out) / "best.ckpt", test)
    print(
        json.dumps(
            {
                "split_seed": seed,
                "train_images": len(train),
                "val_images": len(val),
                "test_images": len(test),
                "model": config["model"],
                "epochs": result.epochs_done,
                "best_epoch": result.best["epoch"] if result.best else None,
                "train_seconds": round(seconds, 1),
                "test_accuracy": metrics["accuracy"],
                "test_f1_macro": metrics["f1_macro"],
            }
        )
    )


if __name__ == "__main__":
    main()
