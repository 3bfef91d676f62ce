"""Ids beyond what the database can hold answer 404 (paths) or 422 (other numbers), never a
500 or a dropped connection."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.models import Project
from tests.helpers import assert_api_error

HUGE = "99999999999999999999999"


@pytest.mark.parametrize(
    "path",
    [
        f"/api/projects/{HUGE}",
        f"/api/jobs/{HUGE}",
        f"/api/jobs/{HUGE}/events",
        f"/api/projects/{{pid}}/images/{HUGE}",
        f"/api/projects/{{pid}}/images/{HUGE}/file",
        f"/api/projects/{{pid}}/experiments/{HUGE}",
        f"/api/projects/{{pid}}/splits/{HUGE}",
        f"/api/projects/{{pid}}/imports/{HUGE}",
    ],
)
def test_huge_ids_in_paths_answer_404(client: TestClient, project: Project, path: str) -> None:
    response = client.get(path.format(pid=project.id))
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"].endswith("not_found")


def test_huge_ids_on_pages_answer_404(client: TestClient) -> None:
    response = client.get(f"/projects/{HUGE}")
    assert response.status_code == 404


def test_huge_numbers_elsewhere_answer_4xx(client: TestClient, project: Project) -> None:
    response = client.get(f"/api/projects/{project.id}/images", params={"class_id": HUGE})
    assert response.status_code in {404, 422}, response.text
    created = client.post(
        f"/api/projects/{project.id}/experiments", json={"name": "x", "split_id": int(HUGE)}
    )
    assert created.status_code in {404, 422}, created.text
    if created.status_code == 422:
        assert_api_error(created, 422, created.json()["error"]["code"])
