"""Quality of the default recipe of anomaly detection or regression on its published synthetic
benchmark (issue bars: image AUROC ≥ 0.95; mean R² ≥ 0.9; within 10 minutes of training on 2
CPU cores).

The data goes the studio's way: the generator writes a folder, the studio's importer reads it
and the task's import mapping makes the annotations; the split is the splits service's own
(80/10/10 stratified on the task's tokens, keeping what the task keeps out of train: anomalous
images); training is workers.ml.train.fit with the task's default recipe (--set overrides);
the test subset is scored by the task's evaluation, as the evaluate job does. One JSON line
per seed, then a summary with steps and seconds per step.

    python benchmarks/train_tasks.py anomaly --images 400 --size 128 --seeds 0,1,2
    python benchmarks/train_tasks.py regression --images 600 --size 64 --set epochs=40

Record `uptime` beside the figures: on a shared 2-core machine wall time says little; the
step count and the s/step measured in the same run do.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app.services.experiments import default_config  # noqa: E402
from app.tasks import get_task  # noqa: E402
from app.tasks.registry import AnnotationRow  # noqa: E402
from benchmarks.synthetic import write_dataset  # noqa: E402
from workers.ml.tasks.base import Ann, Sample  # noqa: E402

RATIOS = {"train": 0.8, "val": 0.1, "test": 0.1}


def studio_samples(folder: Path, task: str, fmt: str) -> tuple[list[Sample], list[str]]:
    """The folder read by the studio's importer and the task's import mapping; masks are
    written next to the data, as the import job stores them."""
    from PIL import Image

    from app.importers import read_source
    from app.tasks import map_sample
    from app.tasks.mapping import ClassBook

    result = read_source(folder, task, fmt)
    book = ClassBook({}, result.classes, get_task(task).implicit_classes)
    masks = folder / "_masks"
    masks.mkdir(exist_ok=True)
    samples: list[Sample] = []
    for index, item in enumerate(result.samples):
        path = folder / item.path
        with Image.open(path) as picture:
            width, height = picture.size
        anns = []
        for m in map_sample(item, task, width, height, book, folder, lambda _message: None):
            geometry = dict(m.geometry)
            if m.mask is not None:
                file = masks / f"{index}.png"
                Image.fromarray(m.mask * 255).save(file)
                geometry["file"] = str(file)
            anns.append(Ann(m.kind, m.label, geometry, dict(m.attributes)))
        samples.append(Sample(index, path, width=width, height=height, annotations=anns))
    classes = sorted(book.index, key=book.index.__getitem__)
    return samples, classes


def split(task: str, samples: list[Sample], seed: int) -> dict[str, list[Sample]]:
    """80/10/10 as the splits service makes it: the task's stratification tokens, and what
    the task keeps out of train stays out."""
    from app.services.split_strata import stratify_keeping_out
    from app.services.split_strategies import Item, build_units, expand

    spec = get_task(task)
    if spec.stratify is not None:
        rows = [
            AnnotationRow(s.image_id, a.kind, a.class_name, a.geometry, a.attributes)
            for s in samples
            for a in s.annotations
        ]
        tokens = spec.stratify(rows)
    else:
        tokens = {
            s.image_id: {a.class_name for a in s.annotations if a.class_name} for s in samples
        }
    items = [
        Item(
            sha256=hashlib.sha256(s.path.read_bytes()).hexdigest(),
            labels=frozenset(tokens.get(s.image_id, set())),
        )
        for s in samples
    ]
    units = build_units(items, near_pairs=[])
    held = set(spec.kept_out_of_train)
    per_unit = stratify_keeping_out(units, RATIOS, seed, held)
    parts: dict[str, list[Sample]] = {"train": [], "val": [], "test": []}
    for sample, subset in zip(samples, expand(units, per_unit, len(items)), strict=True):
        sample.subset = subset
        parts[subset].append(sample)
    return parts


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, _, raw = pair.partition("=")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        target = out
        *parents, leaf = key.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return out


def run(task: str, folder: Path, fmt: str, seed: int, overrides: dict[str, Any]) -> dict[str, Any]:
    from workers.ml.checkpoints import load_for_inference
    from workers.ml.tasks import get_task_code
    from workers.ml.train import FitRequest, fit

    spec = get_task(task)
    code = get_task_code(task)
    samples, classes = studio_samples(folder, task, fmt)
    parts = split(task, samples, seed)
    config = default_config(task)
    for key, value in overrides.items():
        config[key] = {**config[key], **value} if isinstance(value, dict) else value
    config["seed"] = seed
    prepared = code.prepare(parts, classes, config)
    epochs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as out:
        started = time.monotonic()
        cpu_started = time.process_time()

        def report(event: dict[str, Any]) -> None:
            if event["type"] == "epoch":
                epochs.append({"epoch": event["epoch"], **event["metrics"]})

        result = fit(FitRequest(task, config, classes, prepared, Path(out)), report)
        seconds = time.monotonic() - started
        cpu = time.process_time() - cpu_started
        model = load_for_inference(Path(out) / "best.ckpt")
        outcome = code.evaluate(model, prepared.samples["test"], options={})
    aggregate = outcome.aggregate
    steps = result.global_step
    return {
        "task": task,
        "seed": seed,
        "model": config["model"],
        "image_size": config["image_size"],
        "subsets": {k: len(v) for k, v in prepared.samples.items()},
        "epochs": result.epochs_done,
        "steps": steps,
        "train_seconds": round(seconds, 1),
        "seconds_per_step": round(seconds / max(1, steps), 3),
        "best_epoch": (result.best or {}).get("epoch"),
        "test": {
            m.key: aggregate.get(m.key)
            for m in spec.metrics
            if isinstance(aggregate.get(m.key), float)
        },
        "per_target": {
            row["target"]: round(row["r2"], 4) if row["r2"] is not None else None
            for row in aggregate.get("per_target", [])
        },
        "process_cpu_seconds": round(cpu, 1),
        "curve": [
            {k: round(v, 4) for k, v in e.items() if k in ("epoch", spec.primary_metric)}
            for e in epochs
        ],
        "load": os.getloadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("task", choices=("anomaly", "regression"))
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], help="recipe override key=value")
    args = parser.parse_args()
    overrides = parse_overrides(args.set)
    spec = get_task(args.task)
    runs = []
    with tempfile.TemporaryDirectory() as data:
        folder = Path(data) / args.task
        info = write_dataset(
            args.task, folder, images=args.images, size=args.size, seed=args.data_seed
        )
        for seed in (int(s) for s in args.seeds.split(",")):
            outcome = run(args.task, folder, info["format"], seed, overrides)
            runs.append(outcome)
            print(json.dumps(outcome), flush=True)
    print(
        json.dumps(
            {
                "summary": spec.summary_metric,
                "median": statistics.median(r["test"].get(spec.summary_metric, 0.0) for r in runs),
                "train_seconds": [r["train_seconds"] for r in runs],
                "seconds_per_step": [r["seconds_per_step"] for r in runs],
                "overrides": overrides,
            }
        )
    )


if __name__ == "__main__":
    main()
