"""Image + mask PNG folders for semantic segmentation.

Pairs `images/` with `masks/` (also VOC's `JPEGImages/` + `SegmentationClass/`, CamVid's
`train/` + `trainannot/`) by file name, tolerating differing prefixes (`image_0001` ↔
`gt_0001`). Index masks (L, P palette, 16-bit) are read as class indices, 255 = ignore; RGB
masks need a colour map. Class names come from `dataset_meta.json`, `labelmap.csv`
(`name,r,g,b`), VOC `labelmap.txt` or `class_names.txt`.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

from app.importers import Importer, register_importer
from app.importers.base import (
    ImportProblem,
    ReadResult,
    Sample,
    SampleAnnotation,
    image_files,
    read_json,
    read_text,
    rel,
)
from app.importers.pairing import subset_from_path

MASK_DIRS = {
    "masks",
    "mask",
    "segmentationclass",
    "gt",
    "groundtruth",
    "ground_truth",
    "annotations",
    "labels",
}


def _is_mask_dir(name: str) -> bool:
    return name.lower() in MASK_DIRS or name.lower().endswith("annot")


def _key(stem: str) -> str:
    return re.sub(r"^[A-Za-z]+_(?=\d)", "", stem)


def _pairs(root: Path) -> list[tuple[Path, Path]]:
    files = image_files(root)
    masks = [p for p in files if _is_mask_dir(p.parent.name)]
    images = [p for p in files if not any(_is_mask_dir(x) for x in p.relative_to(root).parts[:-1])]
    images = [p for p in images if p.parent.name.lower() != "segmentationobject"]
    by_key: dict[tuple[Path, str], Path] = {}
    for candidate in masks:
        by_key[(candidate.parent.parent, candidate.stem)] = candidate
        by_key.setdefault((candidate.parent.parent, _key(candidate.stem)), candidate)
    found = []
    for image in images:
        base = image.parent.parent
        mask: Path | None = by_key.get((base, image.stem)) or by_key.get((base, _key(image.stem)))
        if mask is None:  # CamVid: train/x.png ↔ trainannot/x.png
            sibling = image.parent.parent / f"{image.parent.name}annot" / image.name
            mask = sibling if sibling.is_file() and not sibling.is_symlink() else None
        if mask is not None:
            found.append((image, mask))
    return found


def detect(root: Path, task_type: str) -> float:
    return 0.85 if _pairs(root) else 0.0


def class_map(root: Path) -> tuple[dict[int, str], dict[str, str]]:
    """(index → name, 'r,g,b' → name) from whichever class-map file the source has."""
    names: dict[int, str] = {}
    colors: dict[str, str] = {}
    meta = root / "dataset_meta.json"
    if meta.is_file() and not meta.is_symlink():
        data: Any = read_json(meta)
        label_map = data.get("label_map", {}) if isinstance(data, dict) else {}
        for key, value in label_map.items():
            names[int(key)] = str(value)
        for i, rgb in enumerate(data.get("segmentation_colors") or []):
            if i in names and isinstance(rgb, list) and len(rgb) == 3:
                colors[",".join(str(int(c)) for c in rgb)] = names[i]
        return names, colors
    table = root / "labelmap.csv"
    if table.is_file() and not table.is_symlink():
        rows = list(csv.reader(io.StringIO(read_text(table))))
        for i, row in enumerate(r for r in rows[1:] if r):
            names[i] = row[0].strip()
            if len(row) >= 4:
                colors[",".join(c.strip() for c in row[1:4])] = names[i]
        return names, colors
    voc = root / "labelmap.txt"
    if voc.is_file() and not voc.is_symlink():
        lines = [x for x in read_text(voc).splitlines() if x.strip() and not x.startswith("#")]
        for i, line in enumerate(lines):
            parts = line.split(":")
            names[i] = parts[0].strip()
            if len(parts) > 1 and parts[1].strip():
                colors[parts[1].strip().replace(" ", "")] = names[i]
        return names, colors
    plain = root / "class_names.txt"
    if plain.is_file() and not plain.is_symlink():
        lines = [x.strip() for x in read_text(plain).splitlines() if x.strip()]
        names = dict(enumerate(lines))
    return names, colors


def read(root: Path, task_type: str) -> ReadResult:
    names, colors = class_map(root)
    classes = [names[i] for i in sorted(names)]
    result = ReadResult(format="masks", samples=[], classes=classes)
    pairs = _pairs(root)
    if not pairs:
        raise ImportProblem(
            "No image/mask pairs found; put images in images/ and masks with the same names "
            "in masks/.",
            code="no_masks",
        )
    for image, mask in pairs:
        geometry = {
            "path": rel(root, mask),
            "names": {str(k): v for k, v in names.items()},
            "colors": colors,
        }
        result.samples.append(
            Sample(
                rel(root, image),
                [SampleAnnotation("mask_file", None, geometry)],
                subset=subset_from_path(root, image),
            )
        )
    return result


register_importer(
    Importer(
        key="masks",
        title="Images + mask PNGs (index, palette, 16-bit or RGB with a colour map)",
        detect=detect,
        read=read,
        tasks=("segmentation",),
    )
)
