from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.storage import Storage
from tests.helpers import assert_api_error

HOSTILE = ["<script>alert(1)</script>", '" onmouseover="x', "Robert'); DROP TABLE project;--"]


def create(client: TestClient, name: str = "Digits", task: str = "classification", **extra):  # type: ignore[no-untyped-def]
    return client.post("/api/projects", json={"name": name, "task_type": task, **extra})


def test_create_project_answers_201_with_the_project(client: TestClient) -> None:
    response = create(client, description="Handwritten digits")
    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "Digits"
    assert body["task_type"] == "classification"
    assert body["task_title"] == "Classification"
    assert body["description"] == "Handwritten digits"
    assert body["counts"] == {"images": 0, "classes": 0, "splits": 0, "experiments": 0}
    assert body["created_at"].endswith("Z") or "+00:00" in body["created_at"]


def test_duplicate_name_answers_409_case_insensitively(client: TestClient) -> None:
    assert create(client).status_code == 201
    assert_api_error(create(client), 409, "project_exists")
    assert_api_error(create(client, name="  DIGITS "), 409, "project_exists")
    assert client.get("/api/projects").json()["total"] == 1


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"name": "", "task_type": "classification"}, "validation_error"),
        ({"name": "   ", "task_type": "classification"}, "validation_error"),
        ({"name": "x" * 101, "task_type": "classification"}, "validation_error"),
        ({"name": "two\nlines", "task_type": "classification"}, "validation_error"),
        ({"name": "ok"}, "validation_error"),
        ({"name": 5, "task_type": "classification"}, "validation_error"),
        ({"name": "ok", "task_type": "segmentaton"}, "unknown_task_type"),
    ],
)
def test_invalid_project_input_answers_422(client: TestClient, payload: dict, code: str) -> None:  # type: ignore[type-arg]
    error = assert_api_error(client.post("/api/projects", json=payload), 422, code)
    if code == "unknown_task_type":
        assert "segmentation" in error["message"]


def test_malformed_json_answers_422_not_500(client: TestClient) -> None:
    response = client.post(
        "/api/projects", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert_api_error(response, 422, "validation_error")


def test_list_projects_newest_first_with_counts(client: TestClient) -> None:
    create(client, name="First")
    create(client, name="Second", task="detection")
    body = client.get("/api/projects").json()
    assert body["total"] == 2 and body["page"] == 1
    assert [p["name"] for p in body["items"]] == ["Second", "First"]
    assert body["items"][0]["task_type"] == "detection"
    assert all("counts" in p for p in body["items"])
    assert client.get("/api/projects", params={"q": "sec"}).json()["total"] == 1
    paged = client.get("/api/projects", params={"page": 2, "page_size": 1}).json()
    assert [p["name"] for p in paged["items"]] == ["First"]


def test_rename_and_describe(client: TestClient) -> None:
    pid = create(client).json()["id"]
    response = client.patch(f"/api/projects/{pid}", json={"name": "Digits v2"})
    assert response.status_code == 200 and response.json()["name"] == "Digits v2"
    response = client.patch(f"/api/projects/{pid}", json={"description": "8x8 images"})
    assert response.json()["description"] == "8x8 images"
    assert response.json()["name"] == "Digits v2"
    assert client.get(f"/api/projects/{pid}").json()["description"] == "8x8 images"


def test_rename_to_an_existing_name_answers_409(client: TestClient) -> None:
    create(client, name="A")
    pid = create(client, name="B").json()["id"]
    assert_api_error(
        client.patch(f"/api/projects/{pid}", json={"name": "a"}), 409, "project_exists"
    )
    # renaming a project to its own name in another case is fine
    assert client.patch(f"/api/projects/{pid}", json={"name": "b"}).status_code == 200


def test_missing_project_answers_404(client: TestClient) -> None:
    assert_api_error(client.get("/api/projects/999"), 404, "project_not_found")
    assert_api_error(
        client.patch("/api/projects/999", json={"name": "x"}), 404, "project_not_found"
    )
    assert_api_error(client.delete("/api/projects/999"), 404, "project_not_found")
    assert_api_error(client.get("/api/projects/abc"), 422, "validation_error")


def test_delete_removes_rows_and_workspace_folder(client: TestClient, storage: Storage) -> None:
    pid = create(client).json()["id"]
    folder = storage.project_dir(pid)
    (folder / "images").mkdir(parents=True)
    (folder / "images" / "a.png").write_bytes(b"x")
    assert client.delete(f"/api/projects/{pid}").status_code == 204
    assert not folder.exists()
    assert_api_error(client.get(f"/api/projects/{pid}"), 404, "project_not_found")
    assert list(storage.trash_root.iterdir()) == []
    # the name is free again
    assert create(client).status_code == 201


def test_delete_with_a_running_job_answers_409(client: TestClient, session, project) -> None:  # type: ignore[no-untyped-def]
    from app.services import jobs

    job = jobs.submit_job(session, kind="test.count", project_id=project.id)
    claimed = jobs.claim_next_job(session, queue="compute")
    assert claimed is not None and claimed.id == job.id
    error = assert_api_error(client.delete(f"/api/projects/{project.id}"), 409, "project_busy")
    assert error["details"]["job_ids"] == [job.id]


def test_delete_cancels_queued_jobs(client: TestClient, session, project) -> None:  # type: ignore[no-untyped-def]
    from app.services import jobs

    jobs.submit_job(session, kind="test.count", project_id=project.id)
    assert client.delete(f"/api/projects/{project.id}").status_code == 204
    assert client.get("/api/jobs").json()["total"] == 0  # cascaded with the project


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_round_trip_unchanged(client: TestClient, name: str) -> None:
    response = create(client, name=name)
    assert response.status_code == 201
    assert client.get(f"/api/projects/{response.json()['id']}").json()["name"] == name


def test_tasks_lists_the_seven_task_keys_with_availability(client: TestClient) -> None:
    body = client.get("/api/tasks").json()
    keys = [t["key"] for t in body["items"]]
    assert keys == [
        "classification",
        "detection",
        "segmentation",
        "instance_segmentation",
        "anomaly",
        "regression",
        "oriented_detection",
    ]
    for task in body["items"]:
        assert task["features"]["projects"] is True
        assert set(task["features"]) == {
            "projects",
            "import",
            "splits",
            "train",
            "evaluate",
            "export",
            "predict",
        }
        assert task["available"][0] == "projects"


def test_health_names_the_database(client: TestClient, db_backend: str) -> None:
    body = client.get("/api/health").json()
    assert body["status"] == "ok"
    assert body["database"] == ("sqlite" if db_backend == "sqlite" else "postgresql")
