"""Small self-made datasets for import tests (written into tmp folders, zipped on demand)."""

from __future__ import annotations

import contextlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage
from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.models import DatasetImport
from app.storage import Storage
from workers.importing import QuietReporter, run_import


def picture(path: Path, size: tuple[int, int] = (40, 30), seed: int = 0, fmt: str = "") -> Path:
    """A real image file (random pixels) at path; the format follows the suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), np.uint8)
    PILImage.fromarray(pixels).save(path, fmt or None)
    return path


def image_bytes(size: tuple[int, int] = (40, 30), fmt: str = "PNG", seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), np.uint8)
    PILImage.fromarray(pixels).save(buffer, fmt)
    return buffer.getvalue()


def class_folders(root: Path, classes: dict[str, int], subsets: tuple[str, ...] = ()) -> Path:
    seed = 0
    for subset in subsets or ("",):
        for name, count in classes.items():
            for i in range(count):
                seed += 1
                picture(root / subset / name / f"{name}_{i}.png", seed=seed)
    return root


def coco(root: Path) -> Path:
    """Two images: a box + polygon object, an iscrowd RLE object, and one unknown category."""
    picture(root / "images" / "a.jpg", (40, 30), 1)
    picture(root / "images" / "b.jpg", (40, 30), 2)
    data: dict[str, Any] = {
        "images": [
            {"id": 1, "file_name": "a.jpg", "width": 40, "height": 30},
            {"id": 2, "file_name": "b.jpg", "width": 40, "height": 30},
        ],
        "categories": [{"id": 1, "name": "cat"}, {"id": 3, "name": "dog"}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "bbox": [2, 2, 10, 10],
                "segmentation": [[2, 2, 12, 2, 12, 12, 2, 12]],
                "iscrowd": 0,
            },
            {
                "id": 2,
                "image_id": 2,
                "category_id": 3,
                "bbox": [0, 0, 40, 30],
                "iscrowd": 1,
                "segmentation": {"counts": [0, 40 * 30], "size": [30, 40]},
            },
            {"id": 3, "image_id": 2, "category_id": 9, "bbox": [1, 1, 2, 2]},
            {"id": 4, "image_id": 1, "category_id": 3, "bbox": [30, 20, 20, 20]},
        ],
    }
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / "instances.json").write_text(json.dumps(data))
    return root


def yolo(root: Path, lines: dict[str, str], names: list[str] | str | None = None) -> Path:
    for i, (stem, text) in enumerate(lines.items()):
        picture(root / "images" / "train" / f"{stem}.jpg", (50, 40), i)
        label = root / "labels" / "train" / f"{stem}.txt"
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text(text)
    if isinstance(names, str):
        (root / "data.yaml").write_text(names)
    elif names is not None:
        (root / "data.yaml").write_text(json.dumps({"names": names}))
    return root


def zip_folder(folder: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
    return target


def zip_entries(target: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return target


def run_now(engine: Engine, storage: Storage, import_id: int) -> dict[str, Any]:
    """Run an import in this process (no pool), as the job would."""
    return run_import(
        lambda: Session(engine, expire_on_commit=False), storage, import_id, QuietReporter()
    )


def import_folder(
    session: Session, engine: Engine, storage: Storage, project_id: int, root: Path
) -> DatasetImport:
    """Import a folder in-process as the job would; returns the import row as it ended
    (a failed import is recorded on it, not raised)."""
    row = DatasetImport(project_id=project_id, source=f"folder:{root}")
    session.add(row)
    session.commit()
    session.refresh(row)
    with contextlib.suppress(Exception):
        run_now(engine, storage, row.id)
    session.expire_all()
    ended = session.get(DatasetImport, row.id)
    assert ended is not None
    return ended


def import_digits(session: Session, engine: Engine, storage: Storage, project_id: int) -> int:
    """The 1,797 scikit-learn digits imported into a classification project, in-process (a
    few seconds); returns the DatasetImport id. Reusable by any test that needs real data."""
    from app.services.imports import start_sample_import

    _, row = start_sample_import(session, project_id=project_id)
    assert row.id is not None
    run_now(engine, storage, row.id)
    return row.id
