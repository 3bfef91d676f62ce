"""Quality of a task's default recipe on its published synthetic benchmark, any task type.

The data goes the studio's own way: the generator writes a folder, the studio's importer reads
it and the task's import mapping turns it into annotations; the split is the splits
service's stratification (80/10/10); training is workers.ml.train.fit with the task's default
recipe (overrides by --set); the test subset is scored by the task's evaluation, as the
evaluate job does. Prints one JSON line per seed, then a summary.

The split uses the task's own stratification tokens (`TaskSpec.stratify`, e.g. regression's
target bins) and keeps out of train what the task keeps out (anomaly: anomalous images).

    python benchmarks/task_quality.py detection --images 300 --size 96 --seeds 0,1,2
    python benchmarks/task_quality.py detection --set epochs=20 --set lr=0.003
    python benchmarks/task_quality.py anomaly --images 400 --size 128
    python benchmarks/task_quality.py regression --images 600 --size 64
    python benchmarks/task_quality.py instance_segmentation --images 300 --size 96
    python benchmarks/task_quality.py oriented_detection --images 300 --size 96 --seeds 0,1,2
    python benchmarks/task_quality.py oriented_detection --format yolo --set image_size=256 \
        --folder ../shared/datasets/formats/yolo_obb/ultralytics_dota8_real
    python benchmarks/task_quality.py detection --format voc \
        --folder ../shared/datasets/formats/voc/raccoon_voc_plus_csv_real

Record `uptime` beside the figures: on a shared 2-core machine, wall time says little.
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


def studio_samples(
    folder: Path, task: str, fmt: str, masks: Path | None = None
) -> tuple[list[Sample], list[str]]:
    """The folder read by the studio's importer and the task's import mapping; masks are
    written as PNG files, as the import job stores them (to `masks`, by default a `_masks`
    folder inside the data)."""
    import numpy as np
    from PIL import Image

    from app.importers import read_source
    from app.tasks import map_sample
    from app.tasks.mapping import ClassBook

    result = read_source(folder, task, fmt)
    book = ClassBook({}, result.classes, get_task(task).implicit_classes)
    masks = masks or folder / "_masks"
    samples: list[Sample] = []
    for index, item in enumerate(result.samples):
        path = folder / item.path
        with Image.open(path) as picture:
            width, height = picture.size
        anns = []
        for m in map_sample(item, task, width, height, book, folder, lambda _message: None):
            geometry = dict(m.geometry)
            if m.mask is not None and m.label is None and "channels" not in m.geometry:
                # a semantic index mask: stored as it is, one annotation per class in it
                masks.mkdir(exist_ok=True)
                file = masks / f"{index}.png"
                Image.fromarray(m.mask).save(file)
                names = {i: name for name, i in book.index.items()}
                for value in sorted(int(v) for v in np.unique(m.mask) if int(v) in names):
                    found = {"file": str(file), "index": value}
                    anns.append(Ann("mask", names[value], found, dict(m.attributes)))
                continue
            if m.mask is not None:
                masks.mkdir(exist_ok=True)
                file = masks / f"{index}_{len(anns)}.png"  # one file per mask (instances)
                # channel bit masks (dual-head) are stored as they are, like the import job
                bits = "channels" in m.geometry
                Image.fromarray(m.mask if bits else m.mask * 255).save(file)
                geometry["file"] = str(file)
                if m.label is not None:  # an instance mask: 255 = the object
                    geometry["value"] = 255
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
    epochs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as work:
        masks, out = Path(work) / "masks", Path(work) / "run"
        masks.mkdir()
        out.mkdir()
        samples, classes = studio_samples(folder, task, fmt, masks)
        parts = split(task, samples, seed)
        config = default_config(task)
        for key, value in overrides.items():
            config[key] = {**config[key], **value} if isinstance(value, dict) else value
        config["seed"] = seed
        prepared = code.prepare(parts, classes, config)
        started = time.monotonic()
        cpu_started = time.process_time()

        def report(event: dict[str, Any]) -> None:
            if event["type"] == "epoch":
                epochs.append({"epoch": event["epoch"], **event["metrics"]})

        result = fit(FitRequest(task, config, classes, prepared, out), report)
        seconds = time.monotonic() - started
        cpu = time.process_time() - cpu_started
        model = load_for_inference(out / "best.ckpt")
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
                "seconds_per_step": [r["seconds_per_step"] for r in runs],
                "overrides": overrides,
            }
        )
    )


if __name__ == "__main__":
    main()
