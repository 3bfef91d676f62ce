"""Hostile and broken sources: each is refused or reported, and nothing leaks or half-lands."""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path
from typing import Any

import pytest
from PIL import Image as PILImage
from sqlmodel import Session, select

from app.importers import read_source
from app.importers.archive import ArchiveLimits, UnsafeArchive, extract_zip
from app.importers.base import LIMITS, ImportProblem
from app.models import Annotation, DatasetImport, Image, LabelClass
from app.storage import Storage
from tests.factories import make_project
from tests.importers.builders import class_folders, coco, image_bytes, picture, run_now, yolo
from workers.context import JobCancelled
from workers.importing import run_import


@pytest.mark.parametrize(
    "name", ["../evil.png", "a/../../evil.png", "/etc/evil.png", "C:/evil.png", "a\\..\\evil.png"]
)
def test_zip_slip_names_are_refused_before_anything_is_written(tmp_path: Path, name: str) -> None:
    archive = tmp_path / "slip.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("ok.png", b"fine")
        out.writestr(name, b"evil")
    with pytest.raises(UnsafeArchive) as error:
        extract_zip(archive, tmp_path / "out")
    assert error.value.code == "archive_unsafe_path" and repr(name)[1:-1] in error.value.message
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil.png").exists()


def test_symlink_entries_in_a_zip_are_refused(tmp_path: Path) -> None:
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as out:
        info = zipfile.ZipInfo("images/link.png")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        out.writestr(info, "/etc/passwd")
    with pytest.raises(UnsafeArchive, match="symbolic link"):
        extract_zip(archive, tmp_path / "out")


def test_zip_bombs_are_refused_by_count_size_and_ratio(tmp_path: Path) -> None:
    archive = tmp_path / "many.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        for i in range(5):
            out.writestr(f"f{i}.png", b"x")
    with pytest.raises(UnsafeArchive) as many:
        extract_zip(archive, tmp_path / "a", ArchiveLimits(max_entries=4))
    assert many.value.code == "archive_too_many_entries"
    with pytest.raises(UnsafeArchive) as big:
        extract_zip(archive, tmp_path / "b", ArchiveLimits(max_bytes=4))
    assert big.value.code == "archive_too_large"
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as out:
        out.writestr("zeros.png", b"\0" * (8 * 1024 * 1024))
    with pytest.raises(UnsafeArchive) as ratio:
        extract_zip(bomb, tmp_path / "c")
    assert ratio.value.code == "archive_ratio" and not (tmp_path / "c").exists()


def test_duplicate_and_encrypted_looking_entries_are_refused(tmp_path: Path) -> None:
    archive = tmp_path / "dup.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("a/X.png", b"1")
        out.writestr("a/x.png", b"2")
    with pytest.raises(UnsafeArchive, match="appears twice"):
        extract_zip(archive, tmp_path / "out")


def test_symlinks_in_a_server_folder_are_skipped_with_a_warning(tmp_path: Path) -> None:
    root = class_folders(tmp_path / "src", {"cat": 2})
    outside = picture(tmp_path / "outside" / "secret.png")
    os.symlink(outside, root / "cat" / "link.png")
    os.symlink(tmp_path / "outside", root / "dog")
    result = read_source(root, "classification")
    assert sorted(s.path for s in result.samples) == ["cat/cat_0.png", "cat/cat_1.png"]
    skipped = {w["file"] for w in result.warnings if w["message"] == "symlink skipped"}
    assert skipped == {"cat/link.png", "dog"}


def _import(
    session: Session, storage: Storage, engine: Any, root: Path, task: str, fmt: str | None = None
) -> tuple[DatasetImport, dict[str, Any] | None, Exception | None]:
    project = make_project(session, task_type=task)
    row = DatasetImport(project_id=project.id, source=f"folder:{root}", format=fmt)
    session.add(row)
    session.commit()
    session.refresh(row)
    summary, error = None, None
    try:
        summary = run_now(engine, storage, row.id)
    except Exception as exc:
        error = exc
    session.expire_all()
    refreshed = session.get(DatasetImport, row.id)
    assert refreshed is not None
    return refreshed, summary, error


def _nothing_written(session: Session, storage: Storage, project_id: int) -> None:
    assert session.exec(select(Image).where(Image.project_id == project_id)).all() == []
    assert session.exec(select(LabelClass).where(LabelClass.project_id == project_id)).all() == []
    files = [p for p in storage.project_dir(project_id).rglob("*") if p.is_file()]
    assert files == []


def test_corrupt_truncated_non_image_and_bomb_files_are_reported_per_file(
    session: Session, storage: Storage, engine: Any, tmp_path: Path
) -> None:
    root = class_folders(tmp_path / "src", {"ok": 2})
    jpeg = image_bytes((64, 64), "JPEG", seed=3)
    (root / "ok" / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (root / "ok" / "text.png").write_bytes(b"this is not a picture")
    PILImage.new("L", (9000, 8000)).save(root / "ok" / "bomb.png")
    (root / "ok" / "notes.md").write_text("ignored")
    row, summary, error = _import(session, storage, engine, root, "classification")
    assert error is None and summary is not None
    assert summary["images"] == 2 and summary["errors"] == 3
    problems = {e["file"]: e["message"] for e in row.errors}
    assert "truncated" in problems["ok/truncated.jpg"]
    assert "not a readable image" in problems["ok/text.png"]
    assert "decompression bomb" in problems["ok/bomb.png"] or "limit" in problems["ok/bomb.png"]
    stored = [p.name for p in storage.images_dir(row.project_id).iterdir()]
    assert len(stored) == 2  # the refused files were not kept


def test_an_import_where_nothing_is_usable_fails_and_leaves_nothing(
    session: Session, storage: Storage, engine: Any, tmp_path: Path
) -> None:
    root = tmp_path / "src"
    (root / "cat").mkdir(parents=True)
    (root / "cat" / "a.png").write_bytes(b"nope")
    row, _summary, error = _import(session, storage, engine, root, "classification")
    assert isinstance(error, ImportProblem) and error.code == "no_readable_image"
    assert row.status == "failed" and "not a readable image" in str(row.errors)
    _nothing_written(session, storage, row.project_id)


def test_cancel_just_before_the_commit_leaves_no_rows_and_no_files(
    session: Session, storage: Storage, engine: Any, tmp_path: Path
) -> None:
    class CancelAtSave:
        def progress(self, done: float, total: float | None = None, **kw: Any) -> None:
            if kw.get("message") == "Saving":
                raise JobCancelled

        def check_cancelled(self) -> None:
            return None

    root = class_folders(tmp_path / "src", {"a": 40, "b": 40})
    project = make_project(session)
    row = DatasetImport(project_id=project.id, source=f"folder:{root}")
    session.add(row)
    session.commit()
    with pytest.raises(JobCancelled):
        run_import(lambda: Session(engine, expire_on_commit=False), storage, row.id, CancelAtSave())
    session.expire_all()
    assert session.get(DatasetImport, row.id).status == "cancelled"
    _nothing_written(session, storage, project.id)


def test_malformed_and_oversized_annotation_files_are_rejected_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = coco(tmp_path / "broken")
    (broken / "annotations" / "instances.json").write_text('{"images": [1, 2')
    with pytest.raises(ImportProblem, match=r"instances\.json is not valid JSON"):
        read_source(broken, "detection", "coco")
    nan = coco(tmp_path / "nan")
    (nan / "annotations" / "instances.json").write_text('{"images": [], "x": NaN}')
    with pytest.raises(ImportProblem, match="not valid JSON"):
        read_source(nan, "detection", "coco")
    huge = coco(tmp_path / "huge")
    monkeypatch.setattr(LIMITS, "json_bytes", 100)
    with pytest.raises(ImportProblem) as error:
        read_source(huge, "detection", "coco")
    assert error.value.code == "file_too_large"


def test_yaml_that_would_construct_objects_is_refused_and_download_keys_are_ignored(
    tmp_path: Path,
) -> None:
    hostile = yolo(
        tmp_path / "a",
        {"x": "0 0.5 0.5 0.2 0.2\n"},
        "names: !!python/object/apply:os.system ['touch /tmp/pwned']\n",
    )
    with pytest.raises(ImportProblem, match="only plain data"):
        read_source(hostile, "detection", "yolo")
    assert not Path("/tmp/pwned").exists()
    fetching = yolo(
        tmp_path / "b",
        {"x": "0 0.5 0.5 0.2 0.2\n"},
        "download: https://example.invalid/evil.zip\npath: /etc\nnames: [cat]\n",
    )
    result = read_source(fetching, "detection", "yolo")
    assert result.classes == ["cat"] and len(result.samples) == 1


def test_xml_entities_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "voc"
    picture(root / "JPEGImages" / "a.jpg")
    (root / "Annotations").mkdir()
    (root / "Annotations" / "a.xml").write_text(
        '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY lol "lol">]>'
        "<annotation><filename>a.jpg</filename><object><name>&lol;</name></object></annotation>"
    )
    with pytest.raises(ImportProblem) as error:
        read_source(root, "detection", "voc")
    assert error.value.code == "unsafe_xml"


def test_out_of_bounds_nan_and_unknown_class_lines_are_clipped_or_skipped_with_warnings(
    session: Session, storage: Storage, engine: Any, tmp_path: Path
) -> None:
    root = yolo(
        tmp_path / "y",
        {"a": "0 0.9 0.5 0.4 0.2\n0 nan 0.5 0.1 0.1\n7 0.5 0.5 0.1 0.1\n1 inf 0 0 0\n"},
        ["cat", "dog"],
    )
    row, summary, error = _import(session, storage, engine, root, "detection")
    assert error is None and summary is not None and summary["annotations"] == 1
    messages = " | ".join(w["message"] for w in row.warnings)
    assert "box clipped to the image" in messages
    assert "not a finite number" in messages
    assert "unknown class id 7" in messages
    box = session.exec(select(Annotation).where(Annotation.project_id == row.project_id)).one()
    assert box.geometry == pytest.approx({"x": 35.0, "y": 16.0, "w": 15.0, "h": 8.0})


def test_csv_rows_with_missing_images_and_bad_numbers_are_reported(tmp_path: Path) -> None:
    root = tmp_path / "csv"
    picture(root / "images" / "1.jpg")
    (root / "labels.csv").write_text("image,target\n1.jpg,0.5\nmissing.jpg,1.0\n1.jpg,nan\n")
    result = read_source(root, "regression")
    assert len(result.samples) == 1 and len(result.samples[0].annotations) == 1
    text = str(result.warnings)
    assert "missing.jpg" in text and "not a finite number" in text


def test_upload_stream_stops_at_the_byte_limit_and_keeps_nothing(tmp_path: Path) -> None:
    import io

    from app.errors import TooLarge
    from app.services.imports import save_upload

    target = tmp_path / "staging" / "upload.zip"
    with pytest.raises(TooLarge):
        save_upload(Storage(tmp_path), target, io.BytesIO(b"x" * 3_000_000), limit=2_000_000)
    assert not target.exists()
    assert save_upload(Storage(tmp_path), target, io.BytesIO(b"ok"), limit=10) == 2
