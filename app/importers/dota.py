"""DOTA: `labelTxt/x.txt` lines `x1 y1 x2 y2 x3 y3 x4 y4 class difficult` in pixels, with
optional `imagesource:`/`gsd:` header lines. Roboflow's "YOLO OBB" export uses the same."""

from __future__ import annotations

from pathlib import Path

from app.importers import Importer, register_importer
from app.importers.base import ReadResult, Sample, SampleAnnotation, finite, read_text, rel
from app.importers.pairing import pairs, subset_from_path


def detect(root: Path, task_type: str) -> float:
    has_folder = any(p.is_dir() and p.name == "labelTxt" for p in root.rglob("labelTxt"))
    return 0.9 if has_folder else 0.0


def read(root: Path, task_type: str) -> ReadResult:
    result = ReadResult(format="dota", samples=[], classes=[])
    skipped: list[dict[str, str]] = []
    matched, orphans = pairs(root, "labelTxt", skipped)
    for orphan in orphans:
        result.warn(rel(root, orphan), "label file without image; skipped")
    for image, label in matched:
        sample = Sample(rel(root, image), subset=subset_from_path(root, image))
        result.samples.append(sample)
        if label is None:
            continue
        for number, line in enumerate(read_text(label, warn=result.warn).splitlines(), start=1):
            parts = line.split()
            if not parts or ":" in parts[0]:
                if parts:
                    key, _, value = line.partition(":")
                    sample.attributes[key.strip()] = value.strip()
                continue
            where = f"{rel(root, label)}:{number}"
            try:
                coords = [finite(v) for v in parts[:8]]
                name = parts[8]
                difficult = int(parts[9]) if len(parts) > 9 else 0
            except (ValueError, IndexError):
                result.warn(where, "expected 'x1 y1 … x4 y4 class [difficult]'; line skipped")
                continue
            points = [[coords[i], coords[i + 1]] for i in range(0, 8, 2)]
            if name not in result.classes:
                result.classes.append(name)
            sample.annotations.append(
                SampleAnnotation("quad", name, {"points": points}, {"difficult": difficult})
            )
    result.warnings.extend(skipped)
    result.classes.sort()
    return result


register_importer(
    Importer(
        key="dota",
        title="DOTA (8-point oriented boxes)",
        detect=detect,
        read=read,
        tasks=("oriented_detection", "detection"),
    )
)
