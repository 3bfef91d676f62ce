"""Helpers the tasks' import mappings share (app/tasks/<task>.py `map_sample`).

Each task maps what a format carries onto its own annotation kinds, in pixels of the stored
image: boxes are clipped to the image (with a warning); shapes are converted where the task
needs another kind (polygon → box for detection, 4-point box → oriented box, polygons and RLE
→ an index mask for semantic segmentation). Warnings go to the import report.

Imported by the import worker only (numpy, PIL): task modules import it inside `map_sample`,
so listing tasks in the web process stays cheap.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from app.importers.base import Sample, SampleAnnotation

Warn = Callable[[str], None]
IGNORE = 255
BACKGROUND_NAMES = {"_background_", "background"}


class ClassBook:
    """Class name → pixel/label index; existing project classes first, new ones appended."""

    def __init__(
        self, existing: dict[str, int], declared: list[str], implicit: tuple[str, ...] = ()
    ) -> None:
        self.index = dict(existing)
        self.new: list[str] = []
        if not self.index:
            for name in implicit:
                self.add(name)
        for name in declared:
            self.add(name)

    def add(self, name: str) -> int:
        if task_background(name) and "background" in self.index:
            return self.index["background"]
        if name not in self.index:
            self.index[name] = max(self.index.values(), default=-1) + 1
            self.new.append(name)
        return self.index[name]

    def settle(self, current: dict[str, int]) -> dict[int, int]:
        """Agree with the project's classes as they are at commit time.

        Another import may have added classes since this one started: names it added are
        reused with their index, and this import's new names move past every taken index.
        Returns {old index: new index} for indices that changed, to remap mask pixels.
        """
        remap: dict[int, int] = {}
        next_index = max(current.values(), default=-1) + 1
        new = []
        for name, index in sorted(self.index.items(), key=lambda item: item[1]):
            if name in current:
                final = current[name]
            else:  # new here, or deleted meanwhile: (re)created past every taken index
                final, next_index = next_index, next_index + 1
                new.append(name)
            if final != index:
                remap[index] = final
            self.index[name] = final
        self.new = new
        return remap


def remap_mask(mask: np.ndarray, remap: dict[int, int]) -> np.ndarray:
    """Mask pixel values (class indices) moved by ClassBook.settle; 255 (ignore) stays."""
    table = np.arange(256, dtype=np.uint8)
    for old, new in remap.items():
        if old != IGNORE:
            table[old] = new
    return table[mask]


def mask_classes(mask: np.ndarray, names: dict[int, str]) -> list[tuple[str, int, int]]:
    """(class name, index, pixel count) for each class present in a semantic index mask.

    One stored annotation row per class present (see `stored_rows`)."""
    values, counts = np.unique(mask, return_counts=True)
    return [
        (names[int(v)], int(v), int(c))
        for v, c in zip(values, counts, strict=True)
        if int(v) in names
    ]


def stored_rows(items: list[Mapped], book: ClassBook, kinds: dict[str, int]) -> int:
    """How many annotation rows these mapped items become — one per object, label or value,
    one per class present in a semantic mask — added by kind to `kinds`. The rule analyze
    and the import report share."""
    names = {index: name for name, index in book.index.items()}
    rows = 0
    for item in items:
        count = (
            len(mask_classes(item.mask, names))
            if item.kind == "mask"
            and item.label is None
            and item.mask is not None
            and "channels" not in item.geometry  # channel masks: one class-less row
            else 1
        )
        kinds[item.kind] = kinds.get(item.kind, 0) + count
        rows += count
    return rows


def task_background(name: str) -> bool:
    return name.lower() in BACKGROUND_NAMES


@dataclass
class Mapped:
    kind: str
    label: str | None
    geometry: dict[str, Any] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)
    mask: np.ndarray | None = None  # pixels to write as a PNG for kind == "mask"


def scale(sample: Sample, shape: SampleAnnotation, w: int, h: int) -> dict[str, Any]:
    g = dict(shape.geometry)
    if not sample.normalized:
        return g
    if shape.kind == "bbox":
        return {"x": g["x"] * w, "y": g["y"] * h, "w": g["w"] * w, "h": g["h"] * h}
    if "points" in g:
        return {"points": [[x * w, y * h] for x, y in g["points"]]}
    return g


def clip_box(g: dict[str, float], w: int, h: int, warn: Warn) -> dict[str, float] | None:
    x0, y0 = max(0.0, g["x"]), max(0.0, g["y"])
    x1, y1 = min(float(w), g["x"] + g["w"]), min(float(h), g["y"] + g["h"])
    if x1 - x0 <= 0 or y1 - y0 <= 0:
        warn("box outside the image or empty; skipped")
        return None
    box = {"x": x0, "y": y0, "w": x1 - x0, "h": y1 - y0}
    if any(abs(box[k] - g[k]) > 1e-6 for k in box):
        warn("box clipped to the image")
    return box


def clip_points(points: list[list[float]], w: int, h: int, warn: Warn) -> list[list[float]]:
    clipped = [[min(max(x, 0.0), float(w)), min(max(y, 0.0), float(h))] for x, y in points]
    if clipped != points:
        warn("shape clipped to the image")
    return clipped


def extent(points: list[list[float]]) -> dict[str, float]:
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return {"x": min(xs), "y": min(ys), "w": max(xs) - min(xs), "h": max(ys) - min(ys)}


def quad_to_obb(points: list[list[float]]) -> dict[str, float] | None:
    p = np.asarray(points, float)
    e1, e2 = p[1] - p[0], p[2] - p[1]
    w, h = float(np.hypot(*e1)), float(np.hypot(*e2))
    if w <= 0 or h <= 0:
        return None
    cx, cy = p.mean(axis=0)
    angle = math.degrees(math.atan2(e1[1], e1[0]))
    return {"cx": float(cx), "cy": float(cy), "w": w, "h": h, "angle": angle}


def rle_mask(geometry: dict[str, Any]) -> np.ndarray:
    """A COCO RLE (compressed string, or uncompressed count list) as an [H, W] 0/1 mask."""
    from pycocotools import mask as coco_mask

    height, width = (int(v) for v in geometry["size"])
    counts = geometry["counts"]
    if isinstance(counts, list):
        return counts_mask(counts, height, width)
    rle = {"counts": counts.encode(), "size": [height, width]}
    return np.asarray(coco_mask.decode(rle), dtype=np.uint8)


def counts_mask(counts: list[Any], height: int, width: int) -> np.ndarray:
    """An uncompressed RLE (alternating background / foreground runs, column by column).
    Decoded here rather than by pycocotools, whose decoder leaves the pixels after the last
    run uninitialised when the counts add up to less than the image (files often omit the
    trailing background run): those pixels are background. Counts that are negative or add
    up to more than the image are refused."""
    total = height * width
    flat = np.zeros(total, dtype=np.uint8)
    position, value = 0, 0
    for count in counts:
        if isinstance(count, bool) or not isinstance(count, int | float) or count < 0:
            raise ValueError("RLE counts must be non-negative numbers")
        run = int(count)
        if position + run > total:
            raise ValueError("RLE counts add up to more pixels than the mask has")
        if value:
            flat[position : position + run] = 1
        position += run
        value ^= 1
    return flat.reshape(width, height).T.copy()


def polygon_mask(rings: list[list[list[float]]], w: int, h: int) -> np.ndarray:
    canvas = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(canvas)
    for ring in rings:
        if len(ring) >= 3:
            draw.polygon([(x, y) for x, y in ring], fill=1)
    return np.asarray(canvas, dtype=np.uint8)


def rings_of(geometry: dict[str, Any]) -> list[list[list[float]]]:
    return geometry["rings"] if "rings" in geometry else [geometry["points"]]


def open_mask(root: Path, name: str, w: int, h: int, warn: Warn) -> tuple[np.ndarray, str] | None:
    """A mask file's pixels and PIL mode, or None (with a warning) when it is missing,
    unreadable or not the image's size; a decompression bomb raises MaskProblem."""
    from app.importers.base import inside

    path = inside(root, name)
    if path is None:
        warn(f"mask {name!r} not found; skipped")
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as picture:
                size = picture.size
                if size == (w, h):  # the size is checked before a single pixel is decoded
                    picture.load()
                    mode = picture.mode
                    pixels = np.asarray(picture)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Like a bomb image: this sample is an error, the rest of the import goes on.
        raise MaskProblem(f"mask {name!r} refused as a decompression bomb ({exc})") from None
    except (OSError, ValueError) as exc:
        warn(f"mask {name!r} is not a readable image ({exc}); skipped")
        return None
    if size != (w, h):
        warn(f"mask {name!r} is {size[0]}x{size[1]}, the image {w}x{h}; skipped")
        return None
    return pixels, mode


def read_mask(
    root: Path,
    geometry: dict[str, Any],
    w: int,
    h: int,
    book: ClassBook,
    warn: Warn,
    *,
    binary: bool,
) -> np.ndarray | None:
    opened = open_mask(root, str(geometry["path"]), w, h, warn)
    if opened is None:
        return None
    pixels, mode = opened
    if binary:
        grey = pixels if pixels.ndim == 2 else pixels[..., :3].max(axis=2)
        return (grey > 0).astype(np.uint8)
    out = np.full((h, w), IGNORE, dtype=np.uint8)
    names: dict[str, str] = geometry.get("names") or {}
    if pixels.ndim == 3 and mode in {"RGB", "RGBA"}:
        colors: dict[str, str] = geometry.get("colors") or {}
        if not colors:
            raise MaskProblem(
                f"mask {geometry['path']!r} is an RGB colour mask but the source has no colour "
                "map (dataset_meta.json, labelmap.csv or labelmap.txt)"
            )
        rgb = pixels[..., :3]
        for key, name in colors.items():
            color = np.asarray([int(c) for c in key.split(",")], dtype=rgb.dtype)
            out[np.all(rgb == color, axis=2)] = book.add(name)
        if (out == IGNORE).any():
            warn(f"mask {geometry['path']!r}: colours outside the colour map set to ignore (255)")
        return out
    values = pixels.astype(np.int64)
    unknown = []
    for value in np.unique(values):
        v = int(value)
        if v == IGNORE:
            continue
        if names and str(v) not in names and str(geometry.get("background")) != str(v):
            unknown.append(v)  # a class map was given and does not name it: ignore
            continue
        name = names.get(str(v)) or ("background" if v == 0 else str(v))
        if str(geometry.get("background")) == str(v):
            name = "background"
        out[values == v] = book.add(name)
    if unknown:
        warn(
            f"mask {geometry['path']!r}: class indices {unknown[:10]} are not in the class "
            "map; those pixels set to ignore (255)"
        )
    return out


class MaskProblem(ValueError):
    """A mask that cannot be read as asked; the image is reported as an error."""


def image_labels(sample: Sample, book: ClassBook) -> list[Mapped]:
    """Image-level labels; without any, the classes of the sample's objects (a detection or
    segmentation dataset imported into a classification project)."""
    shapes = sample.annotations
    labels = [s.label for s in shapes if s.kind == "label" and s.label]
    objects = [s.label for s in shapes if s.kind != "label" and s.kind != "mask_file"]
    out: list[Mapped] = []
    for label in dict.fromkeys(labels or [o for o in objects if o]):
        book.add(label)
        out.append(Mapped("label", label))
    return out


def grouped_ids(sample: Sample) -> set[Any]:
    """Groups that have a shape besides a box (a COCO object with a polygon and its bbox)."""
    return {s.group for s in sample.annotations if s.group is not None and s.kind != "bbox"}


def shape_box(
    shape: SampleAnnotation, g: dict[str, Any], w: int, h: int, warn: Warn
) -> dict[str, float] | None:
    """The clipped axis-aligned box of a bbox, polygon, quad or RLE shape."""
    if shape.kind == "bbox":
        return clip_box(g, w, h, warn)
    if shape.kind in {"polygon", "quad"}:
        return clip_box(extent([p for r in rings_of(g) for p in r]), w, h, warn)
    if shape.kind == "rle":
        try:
            ys, xs = np.nonzero(rle_mask(g))
        except (ValueError, TypeError, KeyError) as exc:
            warn(f"bad RLE ({exc}); skipped")
            return None
        if not len(xs):
            return None
        box = {
            "x": float(xs.min()),
            "y": float(ys.min()),
            "w": float(xs.max() - xs.min() + 1),
            "h": float(ys.max() - ys.min() + 1),
        }
        return clip_box(box, w, h, warn)
    return None


def box_to_obb(box: dict[str, float]) -> dict[str, float]:
    return {
        "cx": box["x"] + box["w"] / 2,
        "cy": box["y"] + box["h"] / 2,
        "w": box["w"],
        "h": box["h"],
        "angle": 0.0,
    }
