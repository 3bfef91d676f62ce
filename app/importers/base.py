"""Normalized samples every importer produces, and the guarded readers they share.

Importers are data only: they parse annotation files and list image files, they never decode
images (the import job does that in worker processes) and never write anything.
"""

from __future__ import annotations

import json
import math
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.errors import Invalid
from app.storage import UnsafePath, contained

IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})


@dataclass
class Limits:
    """Caps checked before a file is parsed, so a huge or hostile file fails fast."""

    json_bytes: int = 512 * 1024 * 1024
    text_bytes: int = 128 * 1024 * 1024  # CSV, TXT label files, XML
    yaml_bytes: int = 1024 * 1024
    max_samples: int = 2_000_000


LIMITS = Limits()


class ImportProblem(Invalid):
    """The source cannot be imported as asked; the message names the file and the problem."""

    code = "import_invalid"


@dataclass
class SampleAnnotation:
    """One annotation before it is mapped onto the project's task.

    kind: label | bbox | polygon | rle | quad | mask_file | value. Geometry is in pixels of
    the source image except `mask_file` ({"path": source-relative PNG, "values": {pixel: class
    name}, "colors": {"r,g,b": class name}}) and `rle` (COCO {"counts", "size"}).
    """

    kind: str
    label: str | None = None
    geometry: dict[str, Any] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)
    # Shapes of one object (COCO's bbox + polygon) share a group; the task mapping keeps one.
    group: int | None = None


@dataclass
class Sample:
    """One image of the source: its path relative to the source root and what it carries."""

    path: str
    annotations: list[SampleAnnotation] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)
    subset: str | None = None
    # YOLO stores coordinates as fractions of the image size; the job scales them.
    normalized: bool = False


@dataclass
class ReadResult:
    format: str
    samples: list[Sample]
    classes: list[str]
    warnings: list[dict[str, str]] = field(default_factory=list)

    def warn(self, file: str, message: str) -> None:
        self.warnings.append({"file": file, "message": message})


# --- guarded file access -----------------------------------------------------------------


def rel(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def walk_files(root: Path, skipped: list[dict[str, str]] | None = None) -> Iterator[Path]:
    """Every regular file below root, sorted; symlinks (files or folders) are never followed."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        for name in list(dirnames):
            if (base / name).is_symlink():
                dirnames.remove(name)
                if skipped is not None:
                    skipped.append({"file": rel(root, base / name), "message": "symlink skipped"})
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(("__MACOSX", ".")))
        for name in sorted(filenames):
            path = base / name
            if name.startswith("."):
                continue
            if path.is_symlink():
                if skipped is not None:
                    skipped.append({"file": rel(root, path), "message": "symlink skipped"})
                continue
            if not _regular(path):
                # A named pipe, socket or device would block or mislead a reader.
                if skipped is not None:
                    skipped.append(
                        {"file": rel(root, path), "message": "not a regular file; skipped"}
                    )
                continue
            yield path


def _regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTS


def image_files(root: Path, skipped: list[dict[str, str]] | None = None) -> list[Path]:
    return [p for p in walk_files(root, skipped) if is_image(p)]


def inside(root: Path, name: str) -> Path | None:
    """A file named by a dataset file, if it exists below root and is not a link; else None."""
    try:
        target = contained(root, name)
    except UnsafePath:
        return None
    if (root.resolve() / name).is_symlink() or not target.is_file():
        return None
    return target


def _capped(path: Path, limit: int, kind: str) -> bytes:
    if not _regular(path):
        raise ImportProblem(
            f"{path.name} is not a regular file (a pipe, socket or device); it is not read.",
            code="not_a_file",
        )
    size = path.stat().st_size
    if size > limit:
        raise ImportProblem(
            f"{path.name} is {size} bytes; {kind} files larger than {limit} bytes are refused.",
            code="file_too_large",
            details={"file": path.name, "bytes": size, "limit": limit},
        )
    return path.read_bytes()


FALLBACK_ENCODING = "cp1252"


def decode_text(data: bytes) -> tuple[str, str | None]:
    """UTF-8 (with or without a BOM), else Windows-1252 (a superset of Latin-1 for text),
    else Latin-1, which decodes anything; the second value names the fallback used."""
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError:
        pass
    try:
        return data.decode(FALLBACK_ENCODING), FALLBACK_ENCODING
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


def read_text(
    path: Path, limit: int | None = None, warn: Callable[[str, str], None] | None = None
) -> str:
    """A text file's contents; when it is not UTF-8, `warn(file, message)` says which
    encoding was assumed instead (never a silent U+FFFD)."""
    data = _capped(path, limit or LIMITS.text_bytes, "text")
    text, fallback = decode_text(data)
    if fallback is not None and warn is not None:
        warn(
            path.name,
            f"not UTF-8; read as {fallback} (save it as UTF-8 if characters look wrong)",
        )
    return text


def read_json(path: Path) -> Any:
    data = _capped(path, LIMITS.json_bytes, "JSON")
    try:
        return json.loads(data, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise ImportProblem(
            f"{path.name} is not valid JSON: {str(exc)[:200]}.", code="malformed_file"
        ) from None


def _reject_constant(name: str) -> float:
    raise ValueError(f"non-finite number {name} is not allowed")


def read_yaml(path: Path) -> Any:
    """safe_load only: tags that would construct objects are an error; keys are just data."""
    import yaml

    text, _fallback = decode_text(_capped(path, LIMITS.yaml_bytes, "YAML"))
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ImportProblem(
            f"{path.name} is not valid YAML (only plain data is accepted): {str(exc)[:200]}.",
            code="malformed_file",
        ) from None


def finite(value: Any) -> float:
    """A float from a dataset file; NaN and infinities raise ValueError like bad text does."""
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number")
    return number


def subset_of(name: str) -> str | None:
    """Map a folder name used for splits to train/val/test."""
    key = name.lower()
    if key in {"train", "training", "train2017"}:
        return "train"
    if key in {"val", "valid", "validation", "val2017"}:
        return "val"
    if key in {"test", "testing", "test2017"}:
        return "test"
    return None
