"""Masks beside class folders, for dual-head (classification + segmentation) models.

Two layouts under `masks/` at the source root (see docs/dual-head.md):
- index masks: `masks/channels.txt` (one channel name per line, line 1 = pixel value 0, a
  "background" line marks the background) and `masks/<class>/<name>.png` next to
  `<class>/<name>.<ext>`; the channels are exclusive (softmax);
- per-channel binary masks: `masks/<channel>/<name>.png` (non-zero = the channel), matched to
  the image of the same name; a pixel may be in several channels (independent sigmoids).
In both, 255 = uncertain (ignored by the loss). Masks are optional per image. An optional
`masks/quality.csv` (`image,tier`; image = file name or path) gives each mask a tier: A (loss
weight 1), B (0.5) or C (excluded from the segmentation loss).

Data only, like every importer: pixels are read and checked by the mapping
(app/tasks/channel_masks.py) in the import worker.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from app.importers.base import ReadResult, SampleAnnotation, image_files, read_text, rel

MASK_DIR = "masks"
CHANNELS_FILE = "channels.txt"
QUALITY_FILE = "quality.csv"
TIERS = ("A", "B", "C")
MAX_CHANNELS = 7  # stored as bits of one 8-bit PNG; 255 = ignore


def mask_root(root: Path) -> Path | None:
    folder = root / MASK_DIR
    return folder if folder.is_dir() and not folder.is_symlink() else None


def _tiers(folder: Path, result: ReadResult) -> dict[str, str]:
    path = folder / QUALITY_FILE
    if not path.is_file():
        return {}
    tiers: dict[str, str] = {}
    text = read_text(path, warn=result.warn)
    for row in csv.reader(io.StringIO(text)):
        if len(row) < 2 or row[0].strip().lower() in {"image", "file", "name"}:
            continue
        tier = row[1].strip().upper()
        if tier not in TIERS:
            result.warn(
                f"{MASK_DIR}/{QUALITY_FILE}", f"tier {row[1]!r} of {row[0]!r} is not A, B or C"
            )
            continue
        tiers[row[0].strip()] = tier
    return tiers


def attach_masks(root: Path, result: ReadResult) -> None:
    """Add a `mask_file` annotation (geometry with `channels`) to each sample with a mask."""
    folder = mask_root(root)
    if folder is None:
        return
    tiers = _tiers(folder, result)
    files = [p for p in image_files(folder) if p.suffix.lower() == ".png"]
    by_stem: dict[str, list[Path]] = {}
    index_layout = (folder / CHANNELS_FILE).is_file()
    channels: list[str] = []
    if index_layout:
        channels = [
            line.strip()
            for line in read_text(folder / CHANNELS_FILE, warn=result.warn).splitlines()
            if line.strip()
        ]
        for path in files:
            by_stem.setdefault(
                "/".join((*path.relative_to(folder).parts[:-1], path.stem)), []
            ).append(path)
    else:
        channels = sorted({p.relative_to(folder).parts[0] for p in files if p.parent != folder})
        if len(channels) > MAX_CHANNELS:
            result.warn(
                MASK_DIR,
                f"{len(channels)} channel folders; at most {MAX_CHANNELS} are supported, "
                f"the masks are not imported",
            )
            return
        for path in files:
            by_stem.setdefault(path.stem, []).append(path)
    used: set[Path] = set()
    geometry: dict[str, Any]
    for sample in result.samples:
        name = Path(sample.path)
        tier = tiers.get(sample.path) or tiers.get(name.name) or tiers.get(name.stem)
        attrs = {"tier": tier} if tier else {}
        if index_layout:
            key = "/".join((*name.parts[-2:-1], name.stem))
            found = by_stem.get(key, [])
            if not found:
                continue
            used.update(found)
            geometry = {"layout": "index", "path": rel(root, found[0]), "channels": channels}
        else:
            found = by_stem.get(name.stem, [])
            if not found:
                continue
            used.update(found)
            geometry = {
                "layout": "binary",
                "files": {p.relative_to(folder).parts[0]: rel(root, p) for p in found},
                "channels": channels,
            }
        sample.annotations.append(SampleAnnotation("mask_file", None, geometry, attrs))
    for path in files:
        if path not in used:
            result.warn(rel(root, path), "mask without an image of the same name; skipped")
