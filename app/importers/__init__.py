"""Dataset importers: one module per format, each `detect(root)` and `read(root)`.

Registered through `register_importer`, the same door a plugin would use. Detection scores
every importer on a source folder; the highest score wins unless a format is named.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.importers.base import ImportProblem, ReadResult
from app.importers.taxonomy import apply_folder_taxonomy, read_taxonomy

Detect = Callable[[Path, str], float]
Read = Callable[[Path, str], ReadResult]


@dataclass(frozen=True)
class Importer:
    """A format: `detect` returns a confidence in 0..1 (0 = not this format) for a task type."""

    key: str
    title: str
    detect: Detect
    read: Read
    tasks: tuple[str, ...]


_IMPORTERS: dict[str, Importer] = {}


def register_importer(importer: Importer) -> Importer:
    _IMPORTERS[importer.key] = importer
    return importer


def list_importers() -> list[Importer]:
    _load_builtin()
    return list(_IMPORTERS.values())


def get_importer(key: str) -> Importer:
    _load_builtin()
    try:
        return _IMPORTERS[key]
    except KeyError:
        valid = ", ".join(sorted(_IMPORTERS))
        raise ImportProblem(
            f"format={key!r} is not a known format; use one of: {valid} (or leave it empty to "
            "detect it).",
            code="unknown_format",
            details={"valid": sorted(_IMPORTERS)},
        ) from None


def detect_format(root: Path, task_type: str) -> Importer:
    """The best-scoring importer for this folder and task, or a clear error naming the task's
    formats."""
    scored = []
    for importer in list_importers():
        if task_type not in importer.tasks:
            continue
        score = importer.detect(root, task_type)
        if score > 0:
            scored.append((score, importer.key, importer))
    if not scored:
        names = ", ".join(i.key for i in list_importers() if task_type in i.tasks)
        raise ImportProblem(
            f"Could not recognise the dataset format of this source for a {task_type} "
            f"project; supported formats are: {names}. Check the folder layout or name the "
            "format explicitly.",
            code="format_not_detected",
        )
    scored.sort(key=lambda item: (-item[0], item[1]))
    return scored[0][2]


def read_source(
    root: Path, task_type: str, format: str | None = None, *, taxonomy_from_folders: bool = False
) -> ReadResult:
    importer = get_importer(format) if format else detect_format(root, task_type)
    if task_type not in importer.tasks:
        raise ImportProblem(
            f"format={importer.key!r} cannot be imported into a {task_type} project; it "
            f"supports: {', '.join(importer.tasks)}.",
            code="format_task_mismatch",
        )
    result = importer.read(root, task_type)
    if not result.samples:
        raise ImportProblem(
            f"No images found for format {importer.key!r}: the source has no image files that "
            "its annotations refer to.",
            code="no_images",
            details={"warnings": result.warnings[:50]},
        )
    result.taxonomy = read_taxonomy(root)
    if taxonomy_from_folders:
        apply_folder_taxonomy(result)
    return result


def _load_builtin() -> None:
    if _IMPORTERS:
        return
    from app.importers import (  # noqa: F401 - registration side effect
        anomaly,
        coco,
        csvfile,
        dota,
        folders,
        masks,
        voc,
        yolo,
    )
