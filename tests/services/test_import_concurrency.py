"""Two imports into one project at the same time both succeed: the later commit reuses the
classes the earlier one created and moves its own new classes (and mask pixels) past them."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from app.models import Annotation, DatasetImport, Image, LabelClass
from app.storage import Storage
from tests.factories import make_project
from tests.importers.builders import class_folders, picture, run_now
from workers.importing import QuietReporter, run_import


class HeldBeforeCommit(QuietReporter):
    """Holds the import at its last safe point before the commit until released."""

    def __init__(self) -> None:
        self.waiting = threading.Event()
        self.release = threading.Event()

    def check_cancelled(self) -> None:
        self.waiting.set()
        assert self.release.wait(60)


def _row(session: Session, project_id: int, root: Path) -> int:
    row = DatasetImport(project_id=project_id, source=f"folder:{root}")
    session.add(row)
    session.commit()
    session.refresh(row)
    assert row.id is not None
    return row.id


def _race(
    session: Session, engine: Engine, storage: Storage, project_id: int, first: Path, second: Path
) -> dict[str, Any]:
    """`first` reads the project's classes, then `second` runs to the end, then `first`
    commits: the interleaving that lost one import (UNIQUE constraint failed)."""
    held = HeldBeforeCommit()
    outcome: dict[str, Any] = {}

    def run_first() -> None:
        try:
            outcome["first"] = run_import(
                lambda: Session(engine, expire_on_commit=False),
                storage,
                _row(session_first, project_id, first),
                held,
            )
        except Exception as exc:
            outcome["first"] = exc

    with Session(engine) as session_first:
        thread = threading.Thread(target=run_first)
        thread.start()
        assert held.waiting.wait(60)
        outcome["second"] = run_now(engine, storage, _row(session, project_id, second))
        held.release.set()
        thread.join(60)
    return outcome


def test_concurrent_imports_share_classes_and_both_succeed(
    session: Session, engine: Engine, storage: Storage, tmp_path: Path
) -> None:
    project = make_project(session)
    first = class_folders(tmp_path / "first", {"cat": 2, "dog": 2})
    second = class_folders(tmp_path / "second", {"dog": 1, "bird": 2})
    outcome = _race(session, engine, storage, project.id, first, second)
    assert isinstance(outcome["first"], dict), outcome["first"]
    assert outcome["first"]["images"] == 4 and outcome["second"]["images"] == 3
    session.expire_all()
    classes = {
        c.name: c.index
        for c in session.exec(select(LabelClass).where(LabelClass.project_id == project.id))
    }
    assert set(classes) == {"cat", "dog", "bird"}
    assert sorted(classes.values()) == [0, 1, 2]
    images = session.exec(select(Image).where(Image.project_id == project.id)).all()
    assert len(images) == 7


def test_concurrent_segmentation_imports_remap_mask_pixels(
    session: Session, engine: Engine, storage: Storage, tmp_path: Path
) -> None:
    project = make_project(session, task_type="segmentation")
    roots = {}
    for name in ("road", "car"):
        root = tmp_path / name
        picture(root / "JPEGImages" / f"{name}.jpg", (8, 6))
        index = np.zeros((6, 8), np.uint8)
        index[:, 4:] = 1  # right half: the one class this source names
        (root / "SegmentationClass").mkdir(parents=True)
        PILImage.fromarray(index).save(root / "SegmentationClass" / f"{name}.png")
        (root / "class_names.txt").write_text(f"_background_\n{name}\n")
        roots[name] = root
    outcome = _race(session, engine, storage, project.id, roots["road"], roots["car"])
    assert isinstance(outcome["first"], dict), outcome["first"]
    session.expire_all()
    classes = {
        c.name: c
        for c in session.exec(select(LabelClass).where(LabelClass.project_id == project.id))
    }
    # "car" committed first and took index 1; "road" moved to 2, and so did its pixels.
    assert {n: c.index for n, c in classes.items()} == {"background": 0, "car": 1, "road": 2}
    for name in ("road", "car"):
        image = session.exec(
            select(Image).where(
                Image.project_id == project.id, Image.original_name.endswith(f"{name}.jpg")
            )  # type: ignore[attr-defined]
        ).one()
        rows = session.exec(select(Annotation).where(Annotation.image_id == image.id)).all()
        row = next(r for r in rows if r.class_id == classes[name].id)
        assert row.geometry["index"] == classes[name].index
        pixels = np.asarray(PILImage.open(storage.resolve(row.geometry["path"])))
        assert (pixels[:, 4:] == classes[name].index).all() and (pixels[:, :4] == 0).all()
