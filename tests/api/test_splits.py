"""Splits API: preview, create, list, read, verify, immutability, delete, validation errors."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.models import Experiment, Project
from app.storage import Storage
from tests.factories import make_digits, make_image
from tests.helpers import assert_api_error


def url(project: Project, rest: str = "") -> str:
    return f"/api/projects/{project.id}/splits{rest}"


@pytest.fixture
def digits(session: Session, storage: Storage, project: Project) -> Project:
    assert project.id is not None
    make_digits(session, storage, project.id, per_class=8)
    return project


def test_preview_then_create_then_read(client: TestClient, digits: Project) -> None:
    body = {
        "name": "main",
        "strategy": "stratified",
        "ratios": {"train": 0.75, "val": 0.125, "test": 0.125},
        "seed": 42,
    }
    preview = client.post(url(digits, "/preview"), json=body)
    assert preview.status_code == 200, preview.text
    data = preview.json()
    assert data["images"] == 80 and data["classes"] == [str(d) for d in range(10)]
    (planned,) = data["splits"]
    assert planned["counts"] == {"train": 60, "val": 10, "test": 10}
    for summary in planned["subsets"]:
        share = {"train": 0.75, "val": 0.125, "test": 0.125}[summary["subset"]]
        assert all(abs(n - share * 8) <= 1 for n in summary["classes"].values())
    assert client.get(url(digits)).json()["total"] == 0  # preview saves nothing

    created = client.post(url(digits), json=body)
    assert created.status_code == 201, created.text
    split = created.json()
    assert split["fingerprint"] == planned["fingerprint"] and len(split["fingerprint"]) == 64
    assert split["locked"] is True and split["in_use"] is False
    listed = client.get(url(digits)).json()
    assert listed["total"] == 1 and listed["items"][0]["id"] == split["id"]
    detail = client.get(url(digits, f"/{split['id']}")).json()
    assert [s["subset"] for s in detail["subsets"]] == ["train", "val", "test"]
    assert sum(s["count"] for s in detail["subsets"]) == 80

    verify = client.post(url(digits, f"/{split['id']}/verify"))
    assert verify.status_code == 200
    assert verify.json()["match"] is True and verify.json()["members"] == 80

    assert_api_error(client.post(url(digits), json=body), 409, "split_exists")
    tasks = client.get("/api/tasks").json()["items"]
    assert tasks and all(task["features"]["splits"] for task in tasks)


def test_saved_splits_are_immutable_and_in_use_ones_cannot_be_deleted(
    client: TestClient, session: Session, digits: Project
) -> None:
    split = client.post(url(digits), json={"name": "main"}).json()
    for method in ("PATCH", "PUT"):
        response = client.request(method, url(digits, f"/{split['id']}"), json={"name": "other"})
        assert_api_error(response, 409, "split_locked")
    assert_api_error(client.patch(url(digits, "/999999"), json={}), 404, "split_not_found")

    assert digits.id is not None
    session.add(Experiment(project_id=digits.id, name="exp", split_id=split["id"]))
    session.commit()
    assert client.get(url(digits, f"/{split['id']}")).json()["in_use"] is True
    assert_api_error(client.delete(url(digits, f"/{split['id']}")), 409, "split_in_use")

    other = client.post(url(digits), json={"name": "spare", "seed": 1}).json()
    assert client.delete(url(digits, f"/{other['id']}")).status_code == 204
    assert_api_error(client.get(url(digits, f"/{other['id']}")), 404, "split_not_found")


@pytest.mark.parametrize(
    ("body", "code", "needle"),
    [
        ({"strategy": "random"}, "validation_error", "stratified"),
        ({"ratios": {"train": 0.5, "val": 0.1}}, "validation_error", "sum to 1"),
        ({"ratios": {"train": 0.8, "holdout": 0.2}}, "validation_error", "train"),
        ({"strategy": "group"}, "validation_error", "group_attribute"),
        ({"strategy": "stratified_kfold", "k": 1}, "validation_error", "k"),
        ({"seed": -1}, "validation_error", "seed"),
        ({"unknown": 1}, "validation_error", "unknown"),
        ({"strategy": "leave_one_group_out", "group_attribute": "site"}, "too_few_groups", "site"),
        ({"strategy": "predefined"}, "no_predefined_split", "subset"),
    ],
)
def test_invalid_requests_answer_422_saying_what_is_valid(
    client: TestClient, digits: Project, body: dict[str, object], code: str, needle: str
) -> None:
    error = assert_api_error(
        client.post(url(digits, "/preview"), json={"name": "x", **body}), 422, code
    )
    assert needle in error["message"] + str(error["details"])


def test_kfold_too_many_folds_and_empty_project(client: TestClient, digits: Project) -> None:
    response = client.post(
        url(digits, "/preview"), json={"strategy": "stratified_kfold", "k": 20, "test_ratio": 0.5}
    )
    assert response.status_code == 200  # 40 units for 20 folds is fine
    response = client.post("/api/projects", json={"name": "Empty", "task_type": "detection"})
    empty = response.json()
    assert_api_error(
        client.post(f"/api/projects/{empty['id']}/splits/preview", json={}), 422, "no_images"
    )
    assert_api_error(
        client.post("/api/projects/999999/splits/preview", json={}), 404, "project_not_found"
    )


def test_predefined_split_from_image_attributes(
    client: TestClient, session: Session, storage: Storage, project: Project
) -> None:
    assert project.id is not None
    for i in range(12):
        make_image(
            session,
            storage,
            project.id,
            labels=[f"c{i % 2}"],
            attributes={"subset": ["train", "valid", "test"][i % 3]},
        )
    created = client.post(url(project), json={"name": "from import", "strategy": "predefined"})
    assert created.status_code == 201, created.text
    assert created.json()["counts"] == {"train": 4, "val": 4, "test": 4}


def test_predefined_split_from_the_subsets_an_import_found(
    client: TestClient,
    session: Session,
    engine,
    storage: Storage,
    project: Project,
    tmp_path,  # type: ignore[no-untyped-def]
) -> None:
    """train/val folders in an upload: the import records their split, and the predefined
    strategy builds new splits from it (it used to look only at image attributes)."""
    from app.models import DatasetImport
    from tests.importers.builders import class_folders, run_now

    root = class_folders(tmp_path / "pets", {"cat": 3, "dog": 3}, ("train", "val"))
    row = DatasetImport(project_id=project.id, source=f"folder:{root}")
    session.add(row)
    session.commit()
    session.refresh(row)
    assert run_now(engine, storage, row.id)["split_id"] is not None
    body = {"name": "again", "strategy": "predefined"}
    preview = client.post(url(project, "/preview"), json=body)
    assert preview.status_code == 200, preview.text
    created = client.post(url(project), json=body)
    assert created.status_code == 201, created.text
    assert created.json()["counts"] == {"train": 6, "val": 6}


def test_leave_one_group_out_answers_the_first_split_with_its_family(
    client: TestClient, session: Session, storage: Storage, project: Project
) -> None:
    assert project.id is not None
    for i in range(18):
        make_image(
            session, storage, project.id, labels=[f"c{i % 2}"], attributes={"camera": f"cam{i % 3}"}
        )
    response = client.post(
        url(project),
        json={"name": "dg", "strategy": "leave_one_group_out", "group_attribute": "camera"},
    )
    assert response.status_code == 201, response.text
    first = response.json()
    assert first["family"] == "dg" and first["params"]["held_out"] == "cam0"
    assert [m["name"] for m in first["family_members"]] == ["dg · cam0", "dg · cam1", "dg · cam2"]
    listed = client.get(url(project)).json()
    assert listed["total"] == 3
    for item in listed["items"]:
        assert item["counts"]["test"] == 6 and item["counts"]["train"] + item["counts"]["val"] == 12
        verify = client.post(url(project, f"/{item['id']}/verify")).json()
        assert verify["match"] is True
