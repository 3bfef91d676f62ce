"""Analyze opens the images it counts and counts annotations by the import's rule, so its
numbers and the import report's agree; unreadable files are errors, listed and counted."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image as PILImage
from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.models import Project
from app.services import import_analysis
from app.storage import Storage
from tests.factories import make_project
from tests.helpers import assert_api_error
from tests.importers.builders import class_folders, coco, import_folder, picture, zip_folder


def _analyze(client: TestClient, pid: int, archive: Path) -> dict:  # type: ignore[type-arg]
    with archive.open("rb") as handle:
        files = {"file": (archive.name, handle, "application/zip")}
        response = client.post(f"/api/projects/{pid}/imports/analyze", files=files)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_unreadable_files_are_not_counted_as_images(
    client: TestClient,
    session: Session,
    engine: Engine,
    storage: Storage,
    project: Project,
    tmp_path: Path,
) -> None:
    root = class_folders(tmp_path / "src" / "pets", {"cat": 1, "dog": 1})
    (root / "cat" / "fake.jpg").write_text("not a picture")
    (root / "dog" / "fake.jpg").write_text("not a picture either")
    analysis = _analyze(client, project.id, zip_folder(root.parent, tmp_path / "pets.zip"))
    assert (analysis["files"], analysis["images"], analysis["unreadable"]) == (4, 2, 2)
    assert analysis["checked"] == 4 and analysis["sampled"] is False
    assert sorted(e["file"] for e in analysis["errors"]) == ["cat/fake.jpg", "dog/fake.jpg"]
    row = import_folder(session, engine, storage, project.id, root)
    assert row.status == "succeeded"
    assert row.counts["images"] == analysis["images"] and row.counts["errors"] == 2
    assert row.counts["annotations"] == analysis["annotations"] == 2


def test_a_source_without_a_readable_image_says_exactly_that(
    client: TestClient,
    session: Session,
    engine: Engine,
    storage: Storage,
    project: Project,
    tmp_path: Path,
) -> None:
    root = tmp_path / "src" / "bad"
    for name in ("cat/a.jpg", "dog/b.jpg"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("text renamed .jpg")
    analysis = _analyze(client, project.id, zip_folder(root.parent, tmp_path / "bad.zip"))
    assert analysis["images"] == 0 and analysis["unreadable"] == 2
    row = import_folder(session, engine, storage, project.id, root)
    assert row.status == "failed"
    messages = [e["message"] for e in row.errors if not e["file"]]
    assert messages == ["No readable image: none of the 2 image files in the source could be read."]
    assert sorted(e["file"] for e in row.errors if e["file"]) == ["cat/a.jpg", "dog/b.jpg"]

    flat = tmp_path / "flat"  # no class folders: no format fits, but the real problem is shown
    flat.mkdir()
    (flat / "a.jpg").write_text("text")
    archive = tmp_path / "flat.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.write(flat / "a.jpg", "a.jpg")
    with archive.open("rb") as handle:
        response = client.post(
            f"/api/projects/{project.id}/imports/analyze",
            files={"file": ("flat.zip", handle, "application/zip")},
        )
    error = assert_api_error(response, 422, "no_readable_image")
    assert error["message"].startswith("No readable image")


@pytest.mark.parametrize("task", ["detection", "segmentation", "instance_segmentation"])
def test_analyze_and_the_import_report_count_annotations_alike(
    client: TestClient,
    session: Session,
    engine: Engine,
    storage: Storage,
    tmp_path: Path,
    task: str,
) -> None:
    root = coco(tmp_path / "coco")
    project = make_project(session, task_type=task)
    analysis = _analyze(client, project.id, zip_folder(root, tmp_path / "coco.zip"))
    row = import_folder(session, engine, storage, project.id, root)
    assert row.status == "succeeded", row.errors
    assert analysis["annotations"] == row.counts["annotations"]
    assert analysis["images"] == row.counts["images"]


def test_semantic_masks_count_one_row_per_class_present(
    client: TestClient, session: Session, engine: Engine, storage: Storage, tmp_path: Path
) -> None:
    root = tmp_path / "seg"
    for i, classes in enumerate([(1,), (1, 2), (2, 3)]):
        picture(root / "JPEGImages" / f"{i}.jpg", (8, 6), i)
        index = np.zeros((6, 8), np.uint8)
        for k, value in enumerate(classes):
            index[k, :] = value
        (root / "SegmentationClass").mkdir(parents=True, exist_ok=True)
        PILImage.fromarray(index).save(root / "SegmentationClass" / f"{i}.png")
    (root / "class_names.txt").write_text("_background_\nroad\ncar\nsky\n")
    project = make_project(session, task_type="segmentation")
    analysis = _analyze(client, project.id, zip_folder(root, tmp_path / "seg.zip"))
    row = import_folder(session, engine, storage, project.id, root)
    # background + the classes painted, per image: 2 + 3 + 3
    assert analysis["annotations"] == row.counts["annotations"] == 8


def test_large_sources_are_sampled_and_say_so(
    client: TestClient, project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(import_analysis, "OPEN_LIMIT", 4)
    root = class_folders(tmp_path / "src" / "many", {"a": 6, "b": 6})
    (root / "a" / "zz-fake.png").write_text("not an image")
    analysis = _analyze(client, project.id, zip_folder(root.parent, tmp_path / "many.zip"))
    assert analysis["sampled"] is True and analysis["checked"] == 4 and analysis["files"] == 13
    assert analysis["images"] <= 13
