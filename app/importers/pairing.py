"""Pairing images with per-image label files (YOLO `labels/`, DOTA `labelTxt/`)."""

from __future__ import annotations

from pathlib import Path

from app.importers.base import image_files, rel, subset_of, walk_files


def label_for(root: Path, image: Path, folder: str) -> Path | None:
    """`images/…/x.jpg` → `<folder>/…/x.txt`, else `x.txt` next to the image."""
    parts = list(image.relative_to(root).parts)
    candidates = []
    for i, part in enumerate(parts[:-1]):
        if part.lower() == "images":
            swapped = [*parts[:i], folder, *parts[i + 1 : -1], image.stem + ".txt"]
            candidates.append(root.joinpath(*swapped))
    candidates.append(image.with_suffix(".txt"))
    for candidate in candidates:
        if candidate.is_file() and not candidate.is_symlink():
            return candidate
    return None


def pairs(
    root: Path, folder: str, skipped: list[dict[str, str]]
) -> tuple[list[tuple[Path, Path | None]], list[Path]]:
    """(image, label or None) for every image, and label files that have no image."""
    images = image_files(root, skipped)
    matched = []
    used: set[Path] = set()
    for image in images:
        label = label_for(root, image, folder)
        if label is not None:
            used.add(label)
        matched.append((image, label))
    orphans = [
        p
        for p in walk_files(root)
        if p.suffix.lower() == ".txt"
        and p not in used
        and any(part.lower() == folder.lower() for part in p.relative_to(root).parts[:-1])
    ]
    return matched, orphans


def subset_from_path(root: Path, path: Path) -> str | None:
    for part in path.relative_to(root).parts[:-1]:
        if (subset := subset_of(part)) is not None:
            return subset
    return None


__all__ = ["label_for", "pairs", "rel", "subset_from_path"]
