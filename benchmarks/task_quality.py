"""Quality of a task's default recipe on its published synthetic benchmark, any task type.

The data goes the studio's own way: the generator writes a folder, the studio's importer reads
it and the task's import mapping turns it into annotations; the split is the splits
service's stratification (80/10/10); training is workers.ml.train.fit with the task's default
recipe (overrides by --set); the test subset is scored by the task's evaluation, as the
evaluate job does. Prints one JSON line per seed, then a summary.

    python benchmarks/task_quality.py detection --images 300 --size 96 --seeds 0,1,2
    python benchmarks/task_quality.py detection --set epochs=20 --set lr=0.003
    python benchmarks/task_quality.py detection --format voc \
        --folder ../shared/datasets/formats/voc/raccoon_voc_plus_csv_real

Record `uptime` beside the figures: on a shared 2-core machine, wall time says little.
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
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app.services.experiments import default_config  # noqa: E402
from app.tasks import get_task  # noqa: E402
from benchmarks.synthetic import write_dataset  # noqa: E402
from workers.ml.tasks.base import Ann, Sample  # noqa: E402


def studio_samples(folder: Path, task: str, fmt: str) -> tuple[list[Sample], list[str]]:
    """The folder read by the studio's importer and the task's import mapping."""
    from PIL import Image

    from app.importers import read_source
    from app.tasks import map_sample
    from app.tasks.mapping import ClassBook

    result = read_source(folder, task, fmt)
    book = ClassBook({}, result.classes, get_task(task).implicit_classes)
    samples: list[Sample] = []
    for index, item in enumerate(result.samples):
        path = folder / item.path
        with Image.open(path) as picture:
            width, height = picture.size
        mapped = map_sample(item, task, width, height, book, folder, lambda _message: None)
        anns = [Ann(m.kind, m.label, dict(m.geometry), dict(m.attributes)) for m in mapped]
        samples.append(Sample(index, path, width=width, height=height, annotations=anns))
    classes = sorted(book.index, key=book.index.__getitem__)
    return samples, classes


def split(samples: list[Sample], seed: int) -> dict[str, list[Sample]]:
    """Stratified 80/10/10 on the classes present in each image (the splits service's code)."""
    import hashlib

    from app.services.split_strategies import Item, build_units, expand, iterative_stratification

    items = [
        Item(
            sha256=hashlib.sha256(s.path.read_bytes()).hexdigest(),
            labels=frozenset(a.class_name for a in s.annotations if a.class_name),
        )
        for s in samples
    ]
    units = build_units(items, near_pairs=[])
    per_unit = iterative_stratification(units, {"train": 0.8, "val": 0.1, "test": 0.1}, seed)
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
    parts = split(samples, seed)
    config = default_config(task)
    for key, value in overrides.items():
        config[key] = {**config[key], **value} if isinstance(value, dict) else value
    config["seed"] = seed
    prepared = code.prepare(parts, classes, config)
    with tempfile.TemporaryDirectory() as out:
        started = time.monotonic()
        result = fit(FitRequest(task, config, classes, prepared, Path(out)))
        seconds = time.monotonic() - started
        model = load_for_inference(Path(out) / "best.ckpt")
        outcome = code.evaluate(model, prepared.samples["test"], options={})
    aggregate = outcome.aggregate
    steps = result.global_step
    return {
        "task": task,
        "seed": seed,
        "model": config["model"],
        "image_size": config["image_size"],
        "epochs": result.epochs_done,
        "steps": steps,
        "train_seconds": round(seconds, 1),
        "seconds_per_step": round(seconds / max(1, steps), 3),
        "best_epoch": (result.best or {}).get("epoch"),
        "test_images": len(prepared.samples["test"]),
        "test": {
            m.key: aggregate.get(m.key)
            for m in spec.metrics
            if isinstance(aggregate.get(m.key), float)
        },
        "load": os.getloadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task")
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], help="recipe override key=value")
    parser.add_argument("--folder", type=Path, help="an existing dataset instead of the generator")
    parser.add_argument("--format", help="its import format (with --folder)")
    args = parser.parse_args()
    overrides = parse_overrides(args.set)
    spec = get_task(args.task)
    runs = []
    with tempfile.TemporaryDirectory() as data:
        folder, fmt = args.folder, args.format
        if folder is None:
            folder = Path(data) / args.task
            info = write_dataset(
                args.task, folder, images=args.images, size=args.size, seed=args.data_seed
            )
            fmt = info["format"]
        for seed in (int(s) for s in args.seeds.split(",")):
            outcome = run(args.task, folder, fmt, seed, overrides)
            runs.append(outcome)
            print(json.dumps(outcome), flush=True)
    summary = statistics.median(r["test"].get(spec.summary_metric, 0.0) for r in runs)
    print(
        json.dumps(
            {
                "summary": spec.summary_metric,
                "median": summary,
                "train_seconds": [r["train_seconds"] for r in runs],
                "overrides": overrides,
            }
        )
    )


if __name__ == "__main__":
    main()
