"""YOLO / Ultralytics: `cls cx cy w h` boxes, `cls x1 y1 … xn yn` polygons and
`cls x1 y1 x2 y2 x3 y3 x4 y4` oriented boxes, all normalized to 0..1.

Class names come from a data YAML (`names` as a list or an index→name dict), `*.names` or
`classes.txt`. YAML keys such as `download`, `path`, `train` are never acted on: the labels
are paired with images from the folder layout (`images/` ↔ `labels/`, or side by side).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.importers import Importer, register_importer
from app.importers.base import (
    ReadResult,
    Sample,
    SampleAnnotation,
    finite,
    read_text,
    read_yaml,
    rel,
    walk_files,
)
from app.importers.pairing import pairs, subset_from_path


def _names(root: Path, result: ReadResult) -> list[str] | None:
    files = list(walk_files(root))
    for path in files:
        if path.suffix.lower() in {".yaml", ".yml"}:
            data = read_yaml(path)
            names: Any = data.get("names") if isinstance(data, dict) else None
            if isinstance(names, list):
                return [str(n) for n in names]
            if isinstance(names, dict):
                try:
                    top = max(int(k) for k in names)
                    return [str(names.get(i, names.get(str(i), i))) for i in range(top + 1)]
                except (TypeError, ValueError):
                    result.warn(rel(root, path), "names keys are not class indices; ignored")
    for path in files:
        if path.suffix.lower() == ".names" or path.name.lower() in {"classes.txt", "obj.names"}:
            return [
                line.strip()
                for line in read_text(path, warn=result.warn).splitlines()
                if line.strip()
            ]
    return None


def _looks_like_label(text: str) -> bool:
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if not lines:
        return True
    try:
        return all(len(p) >= 5 and int(p[0]) >= 0 and [float(v) for v in p[1:]] for p in lines)
    except ValueError:
        return False


def detect(root: Path, task_type: str) -> float:
    matched, _ = pairs(root, "labels", [])
    labelled = [label for _, label in matched if label is not None]
    if not labelled:
        return 0.0
    sample = labelled[: min(5, len(labelled))]
    if not all(_looks_like_label(read_text(p)) for p in sample):
        return 0.0
    return 0.85


def read(root: Path, task_type: str) -> ReadResult:
    result = ReadResult(format="yolo", samples=[], classes=[])
    names = _names(root, result)
    if names is None:
        result.warn("", "no data.yaml / *.names found; classes are named by their id")
    skipped: list[dict[str, str]] = []
    matched, orphans = pairs(root, "labels", skipped)
    for orphan in orphans:
        result.warn(rel(root, orphan), "label file without image; skipped")
    used: set[str] = set()
    for image, label in matched:
        sample = Sample(rel(root, image), subset=subset_from_path(root, image), normalized=True)
        result.samples.append(sample)
        if label is None:
            continue
        for number, line in enumerate(read_text(label, warn=result.warn).splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{rel(root, label)}:{number}"
            try:
                shape = _shape(line.split(), names, task_type)
            except (ValueError, IndexError) as exc:
                result.warn(where, f"{exc}; line skipped")
                continue
            if shape.label is not None:
                used.add(shape.label)
                sample.annotations.append(shape)
    result.warnings.extend(skipped)
    result.classes = list(names) if names is not None else sorted(used, key=int)
    return result


def _shape(parts: list[str], names: list[str] | None, task_type: str) -> SampleAnnotation:
    cls = int(parts[0])
    if names is not None and not 0 <= cls < len(names):
        raise ValueError(f"unknown class id {cls} (names has {len(names)})")
    label = names[cls] if names is not None else str(cls)
    values = [finite(v) for v in parts[1:]]
    if len(values) == 4:
        cx, cy, w, h = values
        return SampleAnnotation("bbox", label, {"x": cx - w / 2, "y": cy - h / 2, "w": w, "h": h})
    if len(values) == 8:
        points = [[values[i], values[i + 1]] for i in range(0, 8, 2)]
        return SampleAnnotation("quad", label, {"points": points})
    if len(values) >= 6 and len(values) % 2 == 0:
        points = [[values[i], values[i + 1]] for i in range(0, len(values), 2)]
        return SampleAnnotation("polygon", label, {"points": points})
    raise ValueError(f"{len(values)} coordinates; expected 4 (box), 8 (OBB) or an even count ≥ 6")


register_importer(
    Importer(
        key="yolo",
        title="YOLO / Ultralytics (boxes, polygons, OBB)",
        detect=detect,
        read=read,
        tasks=("detection", "segmentation", "instance_segmentation", "oriented_detection"),
    )
)
