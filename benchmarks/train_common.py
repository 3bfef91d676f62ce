"""Shared set-up for the training benchmarks: the scikit-learn digits as PNG files, split."""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from workers.ml.tasks.base import Ann, Prepared, Sample  # noqa: E402


def digits_samples(folder: Path) -> list[Sample]:
    """All 1,797 digits as the studio's digits sample writes them (32 px PNGs, nearest
    upscaling, one folder per class: workers.importing.write_digits), in the order the
    folder importer reads them, so a split seed here draws like the studio's split page."""
    from workers.importing import write_digits

    folder = folder / "v2"  # earlier runs wrote flat files with other PNG settings
    if not (folder / "9").is_dir():
        write_digits(folder)
    samples = []
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        for path in sorted(class_dir.glob("*.png")):
            label = class_dir.name
            samples.append(
                Sample(len(samples), path, target=int(label), annotations=[Ann("label", label)])
            )
    return samples


def stratified_split(
    samples: list[Sample], seed: int = 42
) -> tuple[list[Sample], list[Sample], list[Sample]]:
    """Stratified 80/10/10 by the splits service's own algorithm, with its default guards
    (exact duplicates and near duplicates at perceptual-hash distance 6 kept together), so
    the figures are those of a split made in the studio with the same seed."""
    import hashlib

    from app.services.split_strategies import (
        Item,
        build_units,
        expand,
        find_duplicates,
        iterative_stratification,
    )
    from workers.imaging import phash

    items = []
    for sample in samples:
        data = sample.path.read_bytes()
        with Image.open(sample.path) as picture:
            items.append(
                Item(
                    sha256=hashlib.sha256(data).hexdigest(),
                    labels=frozenset({str(sample.target)}),
                    phash=phash(picture),
                )
            )
    report = find_duplicates(items, near_threshold=6)
    units = build_units(items, near_pairs=report.near_pairs)
    per_unit = iterative_stratification(units, {"train": 0.8, "val": 0.1, "test": 0.1}, seed)
    subsets = expand(units, per_unit, len(items))
    parts: dict[str, list[Sample]] = {"train": [], "val": [], "test": []}
    for sample, subset in zip(samples, subsets, strict=True):
        parts[subset].append(sample)
    return parts["train"], parts["val"], parts["test"]


def fit_request(
    config: dict, classes: list[str], train: list[Sample], val: list[Sample], out: Path
):  # type: ignore[no-untyped-def]
    """A single-label classification FitRequest over already-targeted samples."""
    from workers.ml.train import FitRequest

    prepared = Prepared(samples={"train": train, "val": val}, info={"multi_label": False})
    return FitRequest("classification", config, classes, prepared, out)


def evaluate_checkpoint(path: Path, samples: list[Sample]) -> dict:
    """The studio's evaluation of a checkpoint on samples (the same code the evaluate job runs)."""
    from workers.ml.checkpoints import load_for_inference
    from workers.ml.tasks import get_task_code

    model = load_for_inference(path)
    aggregate = get_task_code("classification").evaluate(model, samples, options={}).aggregate
    return {**aggregate, "n": aggregate.get("samples", len(samples))}
