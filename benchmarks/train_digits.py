"""Digits accuracy with the default recipe: stratified 80/10/10, CPU, wall time of training.

.venv/bin/python benchmarks/train_digits.py                      # five split seeds, defaults
.venv/bin/python benchmarks/train_digits.py --seeds 42 --set epochs=5 --set augment.rotation=0

Each split seed is one run: the split is the splits service's stratified algorithm, so a
seed here gives the same kind of split as the studio's split page with that seed. The last
line is the summary the target is read from: median test accuracy over the seeds and the
slowest training time (wall and CPU: on a shared machine the CPU time is the honest figure).
`--set key=value` (JSON values, dotted keys for `augment.*`) tries a recipe without changing
the defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from train_common import digits_samples, evaluate_checkpoint, fit_request, stratified_split

from app.services.experiments import default_config, resolve_config
from workers.ml.tasks.base import Sample
from workers.ml.train import fit

SEEDS = "42,0,1,2,3"


def overrides(pairs: list[str]) -> dict[str, Any]:
    """key=value pairs (values parsed as JSON when they can be) into a nested config patch."""
    patch: dict[str, Any] = {}
    for pair in pairs:
        key, _, raw = pair.partition("=")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        head, _, tail = key.partition(".")
        if tail:
            patch.setdefault(head, {})[tail] = value
        else:
            patch[head] = value
    return patch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--seeds", default=SEEDS, help="comma-separated split seeds")
    parser.add_argument("--set", action="append", default=[], help="recipe override key=value")
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "digits-png")
    args = parser.parse_args()
    patch = overrides(args.set)
    if args.epochs:
        patch["epochs"] = args.epochs
    config = default_config("classification")
    if patch:
        augment = {**config["augment"], **patch.pop("augment", {})}
        config = resolve_config({**config, **patch, "augment": augment}, "classification")
    samples = digits_samples(args.data)
    runs = [run(samples, int(s), config) for s in args.seeds.split(",")]
    accuracies = [r["test_accuracy"] for r in runs]
    print(
        json.dumps(
            {
                "summary": True,
                "seeds": [r["split_seed"] for r in runs],
                "test_accuracy": accuracies,
                "median_test_accuracy": statistics.median(accuracies),
                "min_test_accuracy": min(accuracies),
                "max_train_seconds": max(r["train_seconds"] for r in runs),
                "median_train_seconds": statistics.median(r["train_seconds"] for r in runs),
                "max_train_cpu_seconds": max(r["train_cpu_seconds"] for r in runs),
                "recipe_changes": args.set,
                "load_average": [round(x, 1) for x in os.getloadavg()],
            }
        )
    )


def run(samples: list[Sample], seed: int, config: dict[str, Any]) -> dict[str, Any]:
    train, val, test = stratified_split(samples, seed)
    classes = [str(i) for i in range(10)]
    with tempfile.TemporaryDirectory() as out:
        started, cpu_started = time.monotonic(), time.process_time()
        result = fit(
            fit_request(config, classes, train, val, Path(out)),
            lambda e: (
                print(json.dumps({"epoch": e["epoch"], **e["metrics"]}), flush=True)
                if e["type"] == "epoch"
                else None
            ),
        )
        seconds = time.monotonic() - started
        cpu_seconds = time.process_time() - cpu_started
        metrics = evaluate_checkpoint(Path(out) / "best.ckpt", test)
    row = {
        "split_seed": seed,
        "train_images": len(train),
        "val_images": len(val),
        "test_images": len(test),
        "model": config["model"],
        "epochs": result.epochs_done,
        "best_epoch": result.best["epoch"] if result.best else None,
        "train_seconds": round(seconds, 1),
        # CPU time of training (one intra-op thread on 2 cores): what the wall time would be
        # on an idle machine; on a shared one the wall time also counts waiting for a core.
        "train_cpu_seconds": round(cpu_seconds, 1),
        "test_accuracy": metrics["accuracy"],
        "test_f1_macro": metrics["f1_macro"],
    }
    print(json.dumps(row), flush=True)
    return row


if __name__ == "__main__":
    main()
