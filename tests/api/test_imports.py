"""Imports API: upload and folder sources, analyze, reports, errors; the job runs in-process."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from app.config import Settings
from app.models import (
    Annotation,
    DatasetImport,
    Image,
    Job,
    LabelClass,
    Project,
    Split,
    SplitMember,
)
from app.services.splits import compute_fingerprint
from app.storage import Storage
from tests.factories import make_project
from tests.helpers import assert_api_error
from tests.importers.builders import class_folders, coco, run_now, zip_entries, zip_folder


def upload(client: TestClient, pid: int, archive: Path, fmt: str = "", path: str = "imports"):  # type: ignore[no-untyped-def]
    data = {"format": fmt} if fmt else {}
    with archive.open("rb") as handle:
        return client.post(
            f"/api/projects/{pid}/{path}",
            files={"file": (archive.name, handle, "application/zip")},
            data=data,
        )


def test_zip_upload_answers_202_and_the_job_imports_class_folders_with_a_split(
    client: TestClient, session: Session, engine, storage: Storage, project: Project, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    folder = class_folders(tmp_path / "src" / "pets", {"cat": 3, "dog": 2}, ("train", "val"))
    response = upload(client, project.id, zip_folder(folder.parent, tmp_path / "pets.zip"))
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["job"]["kind"] == "import" and body["job"]["status"] == "queued"
    assert body["import"]["status"] == "queued" and body["import"]["source"] == "upload:pets.zip"
    summary = run_now(engine, storage, body["import"]["id"])
    assert summary["images"] == 10 and summary["annotations"] == 10 and summary["classes"] == 2

    session.expire_all()
    images = session.exec(select(Image).where(Image.project_id == project.id)).all()
    assert len(images) == 10
    first = images[0]
    assert storage.resolve(first.stored_path).is_file()
    assert storage.resolve(first.thumb_path or "").is_file()
    assert first.original_name.startswith(("train/", "val/"))
    assert (first.width, first.height, first.channels, first.format) == (40, 30, 3, "PNG")
    assert len(first.sha256) == 64 and len(first.phash) == 16
    classes = session.exec(select(LabelClass).where(LabelClass.project_id == project.id)).all()
    assert sorted((c.name, c.index) for c in classes) == [("cat", 0), ("dog", 1)]
    assert len({c.color for c in classes}) == 2
    split = session.exec(select(Split).where(Split.project_id == project.id)).one()
    assert split.strategy == "predefined" and split.locked
    assert split.counts == {"train": 5, "val": 5}
    assert split.fingerprint == compute_fingerprint(session, split.id)
    members = session.exec(select(SplitMember).where(SplitMember.split_id == split.id)).all()
    assert len(members) == 10

    listed = client.get(f"/api/projects/{project.id}/imports").json()
    assert listed["total"] == 1 and listed["items"][0]["status"] == "succeeded"
    detail = client.get(f"/api/projects/{project.id}/imports/{body['import']['id']}").json()
    assert detail["counts"]["images"] == 10 and detail["format"] == "folders"
    assert client.get(f"/api/jobs/{body['job']['id']}").json()["status"] == "queued"
    # nothing left in staging once the import is done
    assert not any(storage.staging_dir(project.id).rglob("*.png"))


def test_coco_import_reports_unknown_class_and_clipped_box(
    client: TestClient, session: Session, engine, storage: Storage, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    project = make_project(session, task_type="detection")
    archive = zip_folder(coco(tmp_path / "coco"), tmp_path / "coco.zip")
    body = upload(client, project.id, archive, fmt="coco").json()
    summary = run_now(engine, storage, body["import"]["id"])
    assert summary["images"] == 2 and summary["annotations"] == 3
    row = session.get(DatasetImport, body["import"]["id"])
    messages = [w["message"] for w in row.warnings]
    assert any("unknown category_id 9" in m for m in messages)
    assert "box clipped to the image" in messages
    boxes = session.exec(select(Annotation).where(Annotation.project_id == project.id)).all()
    assert {a.kind for a in boxes} == {"bbox"}
    clipped = [a.geometry for a in boxes if a.geometry["x"] == 30]
    assert clipped == [{"x": 30.0, "y": 20.0, "w": 10.0, "h": 10.0}]
    assert any(a.attributes.get("iscrowd") == 1 for a in boxes)


def test_analyze_upload_reports_without_writing(
    client: TestClient, session: Session, storage: Storage, project: Project, tmp_path: Path
) -> None:
    folder = class_folders(tmp_path / "src", {"a": 2, "b": 1})
    response = upload(
        client, project.id, zip_folder(folder, tmp_path / "x.zip"), path="imports/analyze"
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["format"] == "folders" and body["images"] == 3 and body["classes"] == ["a", "b"]
    assert session.exec(select(Image)).all() == []
    assert session.exec(select(DatasetImport)).all() == []
    assert not any(p.is_file() for p in storage.project_dir(project.id).rglob("*"))


def test_folder_import_below_an_import_root(
    settings: Settings, session: Session, engine, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from app.main import create_app

    root = tmp_path / "datasets"
    class_folders(root / "flowers", {"rose": 2})
    (tmp_path / "secret").mkdir()
    configured = settings.model_copy(update={"import_roots": [root.resolve()]})
    project = make_project(session)
    with TestClient(create_app(configured), base_url="http://127.0.0.1") as client:
        ok = client.post(f"/api/projects/{project.id}/imports", json={"path": "flowers"})
        assert ok.status_code == 202, ok.text
        assert ok.json()["import"]["source"] == f"folder:{(root / 'flowers').resolve()}"
        analysis = client.post(
            f"/api/projects/{project.id}/imports/analyze", json={"path": str(root / "flowers")}
        )
        assert analysis.json()["images"] == 2
        for bad in (str(tmp_path / "secret"), "../secret", "/etc"):
            response = client.post(f"/api/projects/{project.id}/imports", json={"path": bad})
            assert_api_error(response, 400, "path_not_allowed")
    storage = Storage(configured.workspace_dir)
    assert run_now(engine, storage, ok.json()["import"]["id"])["images"] == 2


def test_folder_import_without_roots_is_refused(client: TestClient, project: Project) -> None:
    response = client.post(f"/api/projects/{project.id}/imports", json={"path": "/tmp"})
    assert_api_error(response, 400, "import_roots_unset")


def test_bad_requests_answer_with_the_error_shape(
    client: TestClient, project: Project, tmp_path: Path
) -> None:
    pid = project.id
    assert_api_error(
        client.post(
            f"/api/projects/{pid}/imports", content=b"x", headers={"content-type": "text/plain"}
        ),
        415,
        "unsupported_media_type",
    )
    assert_api_error(
        client.post(f"/api/projects/{pid}/imports", data={"format": "coco"}), 400, "file_missing"
    )
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    assert_api_error(upload(client, pid, text), 415, "not_a_zip")
    archive = zip_entries(tmp_path / "a.zip", {"a/x.png": b"1"})
    error = assert_api_error(upload(client, pid, archive, fmt="pascal"), 422, "unknown_format")
    assert "folders" in error["message"]
    assert_api_error(upload(client, 9999, archive), 404, "project_not_found")
    assert_api_error(client.get(f"/api/projects/{pid}/imports/77"), 404, "import_not_found")
    big = tmp_path / "big.zip"
    big.write_bytes(b"0" * (6 * 1024 * 1024))  # the test settings allow 5 MB
    assert_api_error(upload(client, pid, big), 413, "request_too_large")
    assert not any(p.is_file() for p in Path(tmp_path).glob("workspace/projects/*/staging/*"))


def test_analyze_names_the_problem_of_an_unsafe_zip(
    client: TestClient, project: Project, tmp_path: Path
) -> None:
    archive = zip_entries(tmp_path / "evil.zip", {"../evil.png": b"x"})
    error = assert_api_error(
        upload(client, project.id, archive, path="imports/analyze"), 400, "archive_unsafe_path"
    )
    assert "../evil.png" in error["message"]


def test_digits_sample_starts_an_import_job(
    client: TestClient, session: Session, engine, storage: Storage, project: Project
) -> None:  # type: ignore[no-untyped-def]
    response = client.post(f"/api/projects/{project.id}/samples/digits")
    assert response.status_code == 202, response.text
    job = session.get(Job, response.json()["job"]["id"])
    assert job is not None and job.kind == "import" and job.queue == "light"
    summary = run_now(engine, storage, response.json()["import"]["id"])
    assert summary["images"] == 1797 and summary["classes"] == 10
    image = session.exec(select(Image).where(Image.project_id == project.id)).first()
    assert image is not None and (image.width, image.height, image.channels) == (32, 32, 1)
    again = assert_api_error(
        client.post(f"/api/projects/{project.id}/samples/digits"), 409, "sample_already_imported"
    )
    assert "already in this project" in again["message"]
    assert session.exec(select(func.count()).select_from(Job)).one() == 1  # no second job
    assert_api_error(
        client.post(f"/api/projects/{project.id}/samples/cifar"), 404, "sample_not_found"
    )
    detection = make_project(session, task_type="detection")
    assert_api_error(
        client.post(f"/api/projects/{detection.id}/samples/digits"), 422, "sample_task_mismatch"
    )


def test_tasks_report_import_as_available(client: TestClient) -> None:
    tasks = client.get("/api/tasks").json()
    items = tasks["items"] if isinstance(tasks, dict) and "items" in tasks else tasks
    assert all("import" in str(t) for t in items)
