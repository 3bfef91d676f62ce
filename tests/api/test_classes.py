"""Classes API: list with counts, rename (unique), recolor (#rrggbb), parent without cycles."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlmodel import Session

from app.models import Project
from app.storage import Storage
from tests.factories import make_class, make_image, make_project
from tests.helpers import assert_api_error


def test_list_classes_in_index_order_with_counts(
    client: TestClient, session: Session, storage: Storage, project: Project
) -> None:
    pid = project.id
    assert pid is not None
    make_image(session, storage, pid, labels=["zebra"])
    make_image(session, storage, pid, labels=["zebra", "ant"])
    make_class(session, pid, "unused")
    body = client.get(f"/api/projects/{pid}/classes").json()
    assert body["total"] == 3
    assert [(c["name"], c["index"], c["image_count"]) for c in body["items"]] == [
        ("zebra", 0, 2),
        ("ant", 1, 1),
        ("unused", 2, 0),
    ]
    one = client.get(f"/api/projects/{pid}/classes/{body['items'][1]['id']}").json()
    assert one["name"] == "ant" and one["annotation_count"] == 1


def test_rename_and_recolor(client: TestClient, session: Session, project: Project) -> None:
    cat = make_class(session, project.id, "cat")  # type: ignore[arg-type]
    url = f"/api/projects/{project.id}/classes/{cat.id}"
    response = client.patch(url, json={"name": "  Felis  ", "color": "#A0B1C2"})
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "Felis" and response.json()["color"] == "#a0b1c2"
    session.refresh(cat)
    assert cat.name == "Felis" and cat.color == "#a0b1c2"
    # renaming a class to another case of its own name is fine
    assert client.patch(url, json={"name": "felis"}).json()["name"] == "felis"


def test_rename_clash_is_409_and_bad_values_are_422(
    client: TestClient, session: Session, project: Project
) -> None:
    cat = make_class(session, project.id, "cat")  # type: ignore[arg-type]
    make_class(session, project.id, "Dog")  # type: ignore[arg-type]
    url = f"/api/projects/{project.id}/classes/{cat.id}"
    error = assert_api_error(client.patch(url, json={"name": "dog"}), 409, "class_exists")
    assert "dog" in error["message"]
    for color in ("red", "#fff", "#12345g", "#1234567"):
        assert_api_error(client.patch(url, json={"color": color}), 422, "validation_error")
    assert_api_error(client.patch(url, json={"name": ""}), 422, "validation_error")
    assert_api_error(client.patch(url, json={"name": "a\nb"}), 422, "validation_error")
    session.refresh(cat)
    assert cat.name == "cat" and cat.color == "#888888"


def test_parent_forms_a_taxonomy_without_cycles(
    client: TestClient, session: Session, project: Project
) -> None:
    pid = project.id
    animal = make_class(session, pid, "animal")  # type: ignore[arg-type]
    mammal = make_class(session, pid, "mammal")  # type: ignore[arg-type]
    cat = make_class(session, pid, "cat")  # type: ignore[arg-type]
    base = f"/api/projects/{pid}/classes"
    assert (
        client.patch(f"{base}/{mammal.id}", json={"parent_id": animal.id}).json()["parent_id"]
        == animal.id
    )
    assert client.patch(f"{base}/{cat.id}", json={"parent_id": mammal.id}).status_code == 200
    assert_api_error(
        client.patch(f"{base}/{animal.id}", json={"parent_id": cat.id}), 422, "class_parent_cycle"
    )
    assert_api_error(
        client.patch(f"{base}/{cat.id}", json={"parent_id": cat.id}), 422, "class_parent_cycle"
    )
    other = make_project(session)
    foreign = make_class(session, other.id, "thing")  # type: ignore[arg-type]
    assert_api_error(
        client.patch(f"{base}/{cat.id}", json={"parent_id": foreign.id}), 422, "invalid_parent"
    )
    # a recolor leaves the parent alone; an explicit null removes it
    assert (
        client.patch(f"{base}/{cat.id}", json={"color": "#000000"}).json()["parent_id"] == mammal.id
    )
    assert client.patch(f"{base}/{cat.id}", json={"parent_id": None}).json()["parent_id"] is None


def test_classes_of_another_project_are_404(
    client: TestClient, session: Session, project: Project
) -> None:
    other = make_project(session)
    foreign = make_class(session, other.id, "thing")  # type: ignore[arg-type]
    url = f"/api/projects/{project.id}/classes/{foreign.id}"
    assert_api_error(client.get(url), 404, "class_not_found")
    assert_api_error(client.patch(url, json={"name": "x"}), 404, "class_not_found")
    assert_api_error(client.get("/api/projects/999/classes"), 404, "project_not_found")
