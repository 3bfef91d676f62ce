"""Split quality figures: class balance per subset and fold, sizes, duplicates, timings.

Usage: .venv/bin/python -m benchmarks.split_quality  (from the repository root)

1. scikit-learn digits, all 1,797 images, through the real service (a scratch SQLite database
   and workspace under a temporary folder): stratified 80/10/10 for five seeds, stratified
   5-fold, plus a seeded random shuffle (what tests/factories.make_split does) as a baseline.
2. Detection samples from ../shared/datasets/formats (or $STUDIO_SHARED_DIR/datasets/formats),
   read here with a few lines of parsing (the importer is built in parallel): class presence
   per image from the boxes, stratified with the same pure algorithm the service uses.

"Deviation" is |images of class c in subset s - ratio_s * images of class c|, in images.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from defusedxml import ElementTree

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.services.split_strategies import (  # noqa: E402
    Item,
    assign_folds,
    build_units,
    expand,
    find_duplicates,
    iterative_stratification,
)

RATIOS = {"train": 0.8, "val": 0.1, "test": 0.1}


def row(*cells: object) -> str:
    """One Markdown table row."""
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def deviation_table(
    items: list[Item], subsets: list[str], ratios: dict[str, float]
) -> dict[str, Any]:
    totals: Counter[str] = Counter()
    for item in items:
        totals.update(item.labels)
    per_subset: dict[str, Counter[str]] = {name: Counter() for name in ratios}
    for item, subset in zip(items, subsets, strict=True):
        per_subset[subset].update(item.labels)
    total_ratio = sum(ratios.values())
    worst = 0.0
    deviations = []
    missing = 0
    for name, ratio in ratios.items():
        for label, n in totals.items():
            d = abs(per_subset[name][label] - ratio / total_ratio * n)
            deviations.append(d)
            worst = max(worst, d)
            if per_subset[name][label] == 0 and n >= len(ratios):
                missing += 1
    sizes = Counter(subsets)
    return {
        "sizes": {name: sizes.get(name, 0) for name in ratios},
        "max_dev": round(worst, 3),
        "mean_dev": round(float(np.mean(deviations)), 3) if deviations else 0.0,
        "missing": missing,
        "classes": len(totals),
    }


def random_baseline(items: list[Item], ratios: dict[str, float], seed: int) -> list[str]:
    order = np.random.default_rng(seed).permutation(len(items))
    names = list(ratios)
    bounds = np.cumsum([round(ratios[n] * len(items)) for n in names])
    result = [""] * len(items)
    for position, index in enumerate(order):
        result[int(index)] = (
            names[int(np.searchsorted(bounds, position, side="right"))]
            if position < bounds[-1]
            else names[-1]
        )
    return result


# --- 1. digits through the service ----------------------------------------------------------


def digits_through_service() -> list[str]:
    from sqlmodel import Session

    from app.db import engine_for, migrate
    from app.models.split import SplitRequest
    from app.services import splits as service
    from app.storage import Storage
    from tests.factories import make_digits, make_project

    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        migrate(url)
        storage = Storage(Path(tmp) / "ws")
        storage.ensure()
        engine = engine_for(url)
        with Session(engine, expire_on_commit=False) as session:
            project = make_project(session, name="digits bench")
            assert project.id is not None
            started = time.perf_counter()
            images = make_digits(session, storage, project.id, per_class=200)
            lines.append(
                f"digits: {len(images)} images stored in {time.perf_counter() - started:.1f} s"
            )
            data = service._load(session, project.id, None)
            counts = Counter(label for item in data.items for label in item.labels)
            lines.append(
                "images per class: " + ", ".join(f"{k}:{counts[k]}" for k in sorted(counts))
            )
            report = find_duplicates(data.items, 6)
            lines.append(
                f"exact duplicate groups: {len(report.exact_groups)} ({report.exact_images} images)"
            )
            lines.append("")
            lines.append(
                row("run", "train/val/test", "max dev", "mean dev", "classes missing")
                + " preview s | create s |"
            )
            lines.append("|---|---|---|---|---|---|---|")
            for seed in range(5):
                request = SplitRequest(name=f"s{seed}", strategy="stratified", seed=seed)
                t0 = time.perf_counter()
                preview = service.preview_split(session, project.id, request)
                t1 = time.perf_counter()
                (split,) = service.create_split(session, project.id, request)
                t2 = time.perf_counter()
                assert split.id is not None and preview.splits[0].fingerprint == split.fingerprint
                member_subsets = {}
                for subset in ("train", "val", "test"):
                    for image_id in service.subset_image_ids(session, split.id, subset):
                        member_subsets[image_id] = subset
                subsets = [member_subsets[i] for i in data.image_ids]
                table = deviation_table(data.items, subsets, RATIOS)
                sizes = "/".join(str(v) for v in table["sizes"].values())
                lines.append(
                    row(
                        f"stratified seed {seed}",
                        sizes,
                        table["max_dev"],
                        table["mean_dev"],
                        table["missing"],
                        f"{t1 - t0:.2f}",
                        f"{t2 - t1:.2f}",
                    )
                )
            for seed in range(2):
                table = deviation_table(
                    data.items, random_baseline(data.items, RATIOS, seed), RATIOS
                )
                sizes = "/".join(str(v) for v in table["sizes"].values())
                lines.append(
                    row(
                        f"random shuffle seed {seed} (baseline)",
                        sizes,
                        table["max_dev"],
                        table["mean_dev"],
                        table["missing"],
                        "-",
                        "-",
                    )
                )
            request = SplitRequest(name="k5", strategy="stratified_kfold", k=5, seed=42)
            t0 = time.perf_counter()
            (split,) = service.create_split(session, project.id, request)
            elapsed = time.perf_counter() - t0
            assert split.id is not None
            seen: Counter[int] = Counter()
            fold_of: dict[int, int] = {}
            for fold in range(5):
                for image_id in service.subset_image_ids(session, split.id, "val", fold):
                    seen[image_id] += 1
                    fold_of[image_id] = fold
            coverage = len(seen) == len(images) and set(seen.values()) == {1}
            per_fold = [str(fold_of[i]) for i in data.image_ids]
            table = deviation_table(data.items, per_fold, {str(f): 0.2 for f in range(5)})
            lines.append("")
            lines.append(
                f"stratified 5-fold (seed 42): fold sizes {list(table['sizes'].values())}, "
                f"max class deviation per fold {table['max_dev']} images "
                f"(mean {table['mean_dev']}), "
                f"every image in exactly one validation fold: {coverage}, create {elapsed:.2f} s "
                f"({len(images) * 5} member rows)"
            )
            verify = service.verify_split(session, project.id, split.id)
            lines.append(f"verify: match={verify.match}")
        engine.dispose()
    return lines


# --- 2. detection samples, parsed here ------------------------------------------------------


def shared_formats() -> Path | None:
    env = os.environ.get("STUDIO_SHARED_DIR")
    candidates = [Path(env) / "datasets" / "formats"] if env else []
    candidates.append(ROOT / ".." / "shared" / "datasets" / "formats")
    candidates.append(Path("/work/shared/datasets/formats"))
    return next((c.resolve() for c in candidates if c.is_dir()), None)


def file_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def coco8(base: Path) -> list[Item]:
    root = base / "yolo" / "ultralytics_coco8_real"
    items = []
    for label_file in sorted((root / "labels").rglob("*.txt")):
        image = root / "images" / label_file.parent.name / (label_file.stem + ".jpg")
        classes = {line.split()[0] for line in label_file.read_text().splitlines() if line.strip()}
        items.append(Item(sha256=file_sha(image), labels=frozenset(classes)))
    return items


def raccoon(base: Path) -> list[Item]:
    root = base / "voc" / "raccoon_voc_plus_csv_real" / "annotations"
    items = []
    for xml in sorted(root.glob("*.xml")):
        tree = ElementTree.parse(xml)
        names = {obj.findtext("name") or "" for obj in tree.findall("object")}
        items.append(
            Item(sha256=hashlib.sha256(xml.stem.encode()).hexdigest(), labels=frozenset(names))
        )
    return items


def coco_fakebbox(base: Path) -> list[Item]:
    path = (
        base
        / "coco"
        / "cocoapi_results_compressed_rle"
        / "instances_val2014_fakebbox100_results.json"
    )
    by_image: dict[int, set[str]] = {}
    for det in json.loads(path.read_text()):
        by_image.setdefault(int(det["image_id"]), set()).add(str(det["category_id"]))
    return [
        Item(sha256=hashlib.sha256(str(i).encode()).hexdigest(), labels=frozenset(labels))
        for i, labels in sorted(by_image.items())
    ]


def detection_samples() -> list[str]:
    base = shared_formats()
    if base is None:
        return ["shared datasets not found; detection figures skipped"]
    lines = [
        row(
            "sample",
            "images",
            "classes",
            "classes/image",
            "strategy",
            "train/val/test",
            "max dev",
            "mean dev",
            "(subset, class) pairs with no image, class has >=3 images",
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, loader in (
        ("coco8 (YOLO, real COCO photos)", coco8),
        ("raccoon (VOC XML, real photos)", raccoon),
        ("cocoapi fakebbox100 (COCO results: 99 images, boxes)", coco_fakebbox),
    ):
        items = sorted(loader(base), key=lambda item: item.sha256)
        per_image = np.mean([len(item.labels) for item in items])
        units = build_units(items)
        for strategy, subsets in (
            (
                "iterative stratification",
                expand(units, iterative_stratification(units, RATIOS, 42), len(items)),
            ),
            ("random shuffle (baseline)", random_baseline(items, RATIOS, 42)),
        ):
            table = deviation_table(items, subsets, RATIOS)
            sizes = "/".join(str(v) for v in table["sizes"].values())
            lines.append(
                row(
                    name,
                    len(items),
                    table["classes"],
                    f"{per_image:.2f}",
                    strategy,
                    sizes,
                    table["max_dev"],
                    table["mean_dev"],
                    table["missing"],
                )
            )
    items = sorted(coco_fakebbox(base), key=lambda item: item.sha256)
    units = build_units(items)
    folds = expand(units, [str(f) for f in assign_folds(units, 5, 42)], len(items))
    table = deviation_table(items, folds, {str(f): 0.2 for f in range(5)})
    lines.append("")
    lines.append(
        f"cocoapi fakebbox100, stratified 5-fold: fold sizes {list(table['sizes'].values())}, "
        f"max class deviation {table['max_dev']} (mean {table['mean_dev']})"
    )
    return lines


def main() -> None:
    print("## Digits (all of scikit-learn's digits, through the service on SQLite)\n")
    print("\n".join(digits_through_service()))
    print("\n## Detection samples\n")
    print("\n".join(detection_samples()))


if __name__ == "__main__":
    main()
