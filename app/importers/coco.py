"""COCO JSON: boxes, polygons, uncompressed and compressed RLE, iscrowd.

Finds every COCO dataset JSON in the source (one per split folder in Roboflow exports,
`annotations/instances_<split>.json` in COCO's own layout). A results file (a top-level
list of detections) is refused: it has no images or categories.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.importers import Importer, register_importer
from app.importers.base import (
    ImportProblem,
    ReadResult,
    Sample,
    SampleAnnotation,
    finite,
    read_json,
    rel,
    subset_of,
    walk_files,
)
from app.importers.csvfile import ImageIndex

SKIP_CLASSES = {"_background_"}


def _candidates(root: Path) -> list[Path]:
    return [p for p in walk_files(root) if p.suffix.lower() == ".json"]


def _peek(path: Path) -> str:
    """'dataset', 'results' or '' from the first bytes, without parsing a large file."""
    with path.open("rb") as handle:
        head = handle.read(65536).lstrip()
    if head.startswith(b"["):
        return "results" if b'"image_id"' in head else ""
    if b'"images"' in head or b'"annotations"' in head or b'"categories"' in head:
        return "dataset"
    return ""


def detect(root: Path, task_type: str) -> float:
    kinds = [_peek(p) for p in _candidates(root)]
    if "dataset" in kinds:
        return 0.9
    return 0.5 if "results" in kinds else 0.0


def read(root: Path, task_type: str) -> ReadResult:
    result = ReadResult(format="coco", samples=[], classes=[])
    index = ImageIndex(root)
    found = False
    results_files = []
    for path in _candidates(root):
        data = read_json(path)
        if isinstance(data, list):
            results_files.append(rel(root, path))
            continue
        if not isinstance(data, dict) or "images" not in data:
            continue
        found = True
        _read_dataset(root, path, data, index, result)
    if not found:
        if results_files:
            raise ImportProblem(
                f"{results_files[0]} is a COCO results file (a list of predictions with "
                "image_id and score), not a dataset: a COCO dataset is a JSON object with "
                "images, annotations and categories.",
                code="coco_results_file",
            )
        raise ImportProblem(
            "No COCO dataset JSON (an object with images, annotations and categories) found.",
            code="no_annotations",
        )
    return result


def _subset(root: Path, path: Path) -> str | None:
    if path.parent != root and subset_of(path.parent.name):
        return subset_of(path.parent.name)
    for token in path.stem.replace("-", "_").split("_"):
        if subset_of(token):
            return subset_of(token)
    return None


def _read_dataset(
    root: Path, path: Path, data: dict[str, Any], index: ImageIndex, result: ReadResult
) -> None:
    name = rel(root, path)
    subset = _subset(root, path)
    categories: dict[Any, str] = {}
    for cat in data.get("categories") or []:
        if isinstance(cat, dict) and "id" in cat and "name" in cat:
            categories[cat["id"]] = str(cat["name"])
    for cat_id in sorted(categories, key=lambda c: (str(type(c)), c)):
        label = categories[cat_id]
        if label not in SKIP_CLASSES and label not in result.classes:
            result.classes.append(label)
    samples: dict[Any, Sample] = {}
    sizes: dict[Any, tuple[int, int]] = {}
    for entry in data.get("images") or []:
        if not isinstance(entry, dict) or "file_name" not in entry:
            result.warn(name, "image entry without file_name; skipped")
            continue
        file_name = str(entry["file_name"])
        subset_dir = path.parent.parent / "images" / (subset or "")
        found = index.find(file_name, path.parent) or index.find(file_name, subset_dir)
        if found is None:
            result.warn(name, f"image {file_name!r} not found; its annotations are skipped")
            continue
        sample = Sample(rel(root, found), subset=subset)
        if "coco_url" in entry or "flickr_url" in entry:
            sample.attributes["coco_id"] = entry.get("id")
        samples[entry.get("id")] = sample
        sizes[entry.get("id")] = (int(entry.get("width") or 0), int(entry.get("height") or 0))
    for ann in data.get("annotations") or []:
        if not isinstance(ann, dict):
            continue
        target = samples.get(ann.get("image_id"))
        if target is None:
            continue
        cat = categories.get(ann.get("category_id"))
        if cat is None:
            result.warn(
                name,
                f"annotation {ann.get('id')}: unknown category_id "
                f"{ann.get('category_id')!r}; skipped",
            )
            continue
        attrs: dict[str, Any] = {"iscrowd": int(ann.get("iscrowd") or 0)}
        if isinstance(ann.get("attributes"), dict):
            attrs.update({k: v for k, v in ann["attributes"].items() if _plain(v)})
        try:
            target.annotations.extend(_shapes(ann, cat, attrs, sizes[ann.get("image_id")]))
        except (TypeError, ValueError) as exc:
            result.warn(name, f"annotation {ann.get('id')}: {exc}; skipped")
    result.samples.extend(samples.values())


def _plain(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool)) or value is None


def _shapes(
    ann: dict[str, Any], label: str, attrs: dict[str, Any], size: tuple[int, int]
) -> list[SampleAnnotation]:
    shapes: list[SampleAnnotation] = []
    seg = ann.get("segmentation")
    short = False  # a ring of fewer than 3 points: said so when nothing else is left
    if isinstance(seg, list) and seg:
        rings = []
        for ring in seg:
            coords = [finite(v) for v in ring]
            if len(coords) >= 6 and len(coords) % 2 == 0:
                rings.append([[coords[i], coords[i + 1]] for i in range(0, len(coords), 2)])
            else:
                short = True
        if rings:
            geometry = {"points": rings[0]} if len(rings) == 1 else {"rings": rings}
            shapes.append(SampleAnnotation("polygon", label, geometry, dict(attrs)))
    elif isinstance(seg, dict) and "counts" in seg:
        height, width = (seg.get("size") or [size[1], size[0]])[:2]
        counts = seg["counts"]
        if not isinstance(counts, (list, str)):
            raise ValueError("RLE counts must be a list or a string")
        shapes.append(
            SampleAnnotation(
                "rle", label, {"counts": counts, "size": [int(height), int(width)]}, dict(attrs)
            )
        )
    bbox = ann.get("bbox")
    if isinstance(bbox, list) and len(bbox) == 4:
        x, y, w, h = (finite(v) for v in bbox)
        box = SampleAnnotation("bbox", label, {"x": x, "y": y, "w": w, "h": h}, dict(attrs))
        shapes.insert(0, box)
    if not shapes:
        raise ValueError("polygon with fewer than 3 points" if short else "no bbox or segmentation")
    group = id(ann)
    for shape in shapes:
        shape.group = group
    return shapes


register_importer(
    Importer(
        key="coco",
        title="COCO JSON (boxes, polygons, RLE)",
        detect=detect,
        read=read,
        tasks=(
            "detection",
            "segmentation",
            "instance_segmentation",
            "oriented_detection",
            "classification",
        ),
    )
)
