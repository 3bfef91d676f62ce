"""Channel masks beside class folders (app/importers/class_masks.py): both layouts import as
class-less bit masks the worker reads, tiers come from quality.csv, and bad masks (wrong size,
values beyond channels.txt, stray files) give per-file warnings while the import succeeds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from app.models import Annotation, LabelClass
from app.storage import Storage
from tests.factories import make_project
from tests.importers.builders import import_folder


def _image(path: Path, size: tuple[int, int] = (16, 12)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (0, 128, 0)).save(path)


def _mask(path: Path, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values.astype(np.uint8)).save(path)


def _masks(session: Session, project_id: int, storage: Storage) -> list[Annotation]:
    rows = session.exec(
        select(Annotation).where(Annotation.project_id == project_id, Annotation.kind == "mask")
    ).all()
    return list(rows)


def test_index_masks_become_exclusive_bits_with_warnings_for_bad_files(
    session: Session, engine: Engine, storage: Storage, tmp_path: Path
) -> None:
    root = tmp_path / "src"
    for name in ("a", "b", "c"):
        _image(root / "rust" / f"{name}.jpg")
    _image(root / "healthy" / "d.jpg")
    (root / "masks").mkdir(parents=True)
    (root / "masks" / "channels.txt").write_text("background\nleaf\nlesion\n")
    good = np.zeros((12, 16), np.uint8)
    good[2:6, 2:6] = 1
    good[3, 3] = 2
    good[0, 0] = 255
    _mask(root / "masks" / "rust" / "a.png", good)
    beyond = good.copy()
    beyond[8, 8] = 7  # channels.txt has 3 lines
    _mask(root / "masks" / "rust" / "b.png", beyond)
    _mask(root / "masks" / "rust" / "c.png", np.zeros((5, 5), np.uint8))  # wrong size
    _mask(root / "masks" / "rust" / "stray.png", good)
    (root / "masks" / "quality.csv").write_text("image,tier\na.jpg,B\nb.jpg,Z\n")
    project = make_project(session, name="Leaves")
    assert project.id is not None
    done = import_folder(session, engine, storage, project.id, root)
    assert done.status == "succeeded", done.errors
    classes = {c.name for c in session.exec(select(LabelClass)).all()}
    assert classes == {"rust", "healthy"}  # channels are not image classes
    messages = " | ".join(f"{w['file']}: {w['message']}" for w in done.warnings)
    assert "values [7] are beyond the 3 channels" in messages
    assert "is 5x5, the image 16x12" in messages
    assert "stray.png: mask without an image" in messages
    assert "tier 'Z'" in messages
    masks = _masks(session, project.id, storage)
    assert len(masks) == 2 and all(m.class_id is None for m in masks)
    by_tier = {m.attributes.get("tier"): m for m in masks}
    first = by_tier["B"]
    assert first.geometry["channels"] == ["leaf", "lesion"] and first.geometry["exclusive"]
    stored = np.asarray(Image.open(storage.resolve(first.geometry["path"])))
    assert stored[2, 2] == 1 and stored[3, 3] == 2 and stored[0, 0] == 255 and stored[10, 10] == 0
    second = by_tier[None]
    assert np.asarray(Image.open(storage.resolve(second.geometry["path"])))[8, 8] == 255


def test_per_channel_binary_masks_overlap(
    session: Session, engine: Engine, storage: Storage, tmp_path: Path
) -> None:
    root = tmp_path / "src"
    _image(root / "smut" / "x.png")
    _image(root / "healthy" / "y.png")
    leaf = np.zeros((12, 16), np.uint8)
    leaf[1:10, 1:10] = 255
    leaf[0, 15] = 255
    whip = np.zeros((12, 16), np.uint8)
    whip[4:6, 4:6] = 1
    _mask(root / "masks" / "tissue" / "x.png", np.where(leaf == 255, 1, 0))
    _mask(root / "masks" / "structural" / "x.png", whip)
    project = make_project(session, name="Cane")
    assert project.id is not None
    done = import_folder(session, engine, storage, project.id, root)
    assert done.status == "succeeded", done.errors
    (mask,) = _masks(session, project.id, storage)
    assert mask.geometry["channels"] == ["structural", "tissue"]
    assert mask.geometry["exclusive"] is False
    stored = np.asarray(Image.open(storage.resolve(mask.geometry["path"])))
    assert stored[4, 4] == 0b11 and stored[2, 2] == 0b10 and stored[11, 15] == 0
