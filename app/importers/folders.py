"""Class folders: `<class>/<image>`, optionally below `train/`, `val/`, `test/` folders."""

from __future__ import annotations

from pathlib import Path

from app.importers import Importer, register_importer
from app.importers.base import ReadResult, Sample, SampleAnnotation, image_files, rel, subset_of
from app.importers.class_masks import MASK_DIR, attach_masks
from app.importers.taxonomy import is_taxonomy

ANNOTATION_SUFFIXES = {".json", ".xml", ".csv", ".yaml", ".yml"}


def split_roots(root: Path) -> list[tuple[Path, str | None]]:
    """`train/val/test` folders when every image folder at the top is one of them."""
    children = [
        c
        for c in sorted(root.iterdir())
        if c.is_dir() and not c.is_symlink() and c.name != MASK_DIR
    ]
    subsets = [(c, subset_of(c.name)) for c in children]
    if subsets and all(s is not None for _, s in subsets):
        return [(c, s) for c, s in subsets]
    return [(root, None)]


def detect(root: Path, task_type: str) -> float:
    files = [
        p
        for p in root.rglob("*")
        if p.is_file() and not is_taxonomy(root, p) and p.relative_to(root).parts[0] != MASK_DIR
    ]
    if any(p.suffix.lower() in ANNOTATION_SUFFIXES for p in files):
        return 0.0
    if any(p.suffix.lower() == ".txt" for p in files):
        return 0.05
    images = [p for p in files if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".bmp", ".webp"}]
    nested = [p for p in images if p.parent != root]
    return 0.3 if nested else 0.0


def read(root: Path, task_type: str) -> ReadResult:
    result = ReadResult(format="folders", samples=[], classes=[])
    skipped: list[dict[str, str]] = []
    for base, subset in split_roots(root):
        for path in image_files(base, skipped):
            parts = path.relative_to(base).parts
            if len(parts) < 2:
                result.warn(rel(root, path), "image outside any class folder; skipped")
                continue
            label = parts[0]
            if label == MASK_DIR and base == root:
                continue  # masks beside the class folders (app/importers/class_masks.py)
            if label not in result.classes:
                result.classes.append(label)
            attributes = {"folder": "/".join(parts[1:-1])} if len(parts) > 2 else {}
            result.samples.append(
                Sample(
                    path=rel(root, path),
                    annotations=[SampleAnnotation("label", label)],
                    attributes=attributes,
                    subset=subset,
                )
            )
    result.warnings.extend(skipped)
    result.classes.sort()
    attach_masks(root, result)
    return result


register_importer(
    Importer(
        key="folders",
        title="Class folders (optionally in train/val/test)",
        detect=detect,
        read=read,
        tasks=("classification",),
    )
)
