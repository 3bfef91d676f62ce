"""Taxonomy: the class tree over the API, taxonomy.csv on import, and the 422s a hierarchical
recipe gives when the taxonomy cannot serve it (naming the classes)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.config import Settings
from app.models import Project
from app.services import jobs as job_service
from app.storage import Storage
from benchmarks.synthetic.hierarchy import write_hierarchical
from tests.factories import make_class, make_image, make_split
from tests.helpers import assert_api_error
from tests.importers.builders import class_folders, import_folder, zip_folder
from workers.context import JobContext
from workers.handlers.imports import import_dataset

HIERARCHY = {"levels": ["coarse", "fine"], "gated_inference": True}


def _tree(client: TestClient, pid: int) -> dict:  # type: ignore[type-arg]
    response = client.get(f"/api/projects/{pid}/taxonomy")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_taxonomy_follows_parent_edits(
    client: TestClient, session: Session, storage: Storage, project: Project
) -> None:
    pid = project.id
    assert pid is not None
    make_image(session, storage, pid, labels=["cat"])
    make_image(session, storage, pid, labels=["dog"])
    animal = make_class(session, pid, "animal")
    flat = _tree(client, pid)
    assert flat["depth"] == 1 and sorted(flat["leaves"]) == ["animal", "cat", "dog"]
    ids = {c["name"]: c["id"] for c in client.get(f"/api/projects/{pid}/classes").json()["items"]}
    for name in ("cat", "dog"):
        response = client.patch(
            f"/api/projects/{pid}/classes/{ids[name]}", json={"parent_id": animal.id}
        )
        assert response.status_code == 200 and response.json()["parent_id"] == animal.id
    tree = _tree(client, pid)
    assert tree["depth"] == 2 and sorted(tree["leaves"]) == ["cat", "dog"]
    (root,) = tree["items"]
    assert root["name"] == "animal"
    assert sorted(c["name"] for c in root["children"]) == ["cat", "dog"]
    assert {c["image_count"] for c in root["children"]} == {1}
    # a cycle and a parent from nowhere are refused, naming what is wrong
    cycle = client.patch(f"/api/projects/{pid}/classes/{animal.id}", json={"parent_id": ids["cat"]})
    assert "cycle" in assert_api_error(cycle, 422, "class_parent_cycle")["message"]
    assert_api_error(
        client.patch(f"/api/projects/{pid}/classes/{animal.id}", json={"parent_id": 99999}),
        422,
        "invalid_parent",
    )
    assert_api_error(client.get("/api/projects/99999/taxonomy"), 404, "project_not_found")


def test_taxonomy_csv_is_read_on_import(
    client: TestClient,
    session: Session,
    engine: Engine,
    storage: Storage,
    project: Project,
    tmp_path: Path,
) -> None:
    pid = project.id
    assert pid is not None
    write_hierarchical(tmp_path / "data", images=10, size=32)
    row = import_folder(session, engine, storage, pid, tmp_path / "data")
    assert row.status == "succeeded", row.errors
    tree = _tree(client, pid)
    groups = {n["name"]: sorted(c["name"] for c in n["children"]) for n in tree["items"]}
    assert groups == {"solid": ["block", "disc", "wedge"], "hollow": ["frame", "ring"]}
    assert tree["depth"] == 2 and len(tree["leaves"]) == 5
    # the domain folder is kept as the `folder` attribute (the DG group)
    image = client.get(f"/api/projects/{pid}/images", params={"page_size": 1}).json()["items"][0]
    detail = client.get(f"/api/projects/{pid}/images/{image['id']}").json()
    assert detail["attributes"]["folder"] in {"warm", "cool", "grey"}


def test_taxonomy_csv_with_a_cycle_fails_the_import(
    session: Session, engine: Engine, storage: Storage, project: Project, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    write_hierarchical(data, images=5, size=32)
    (data / "taxonomy.csv").write_text("class,parent\ndisc,solid\nsolid,round\nround,disc\n")
    row = import_folder(session, engine, storage, project.id, data)  # type: ignore[arg-type]
    assert row.status == "failed"
    message = row.errors[0]["message"]
    assert "cycle" in message and "disc" in message and "round" in message


def test_hierarchical_recipe_needs_a_parent_for_every_fine_class(
    client: TestClient, session: Session, storage: Storage, project: Project
) -> None:
    pid = project.id
    assert pid is not None
    images = [make_image(session, storage, pid, labels=[n]) for n in ("cat", "dog", "oak", "fir")]
    split = make_split(session, pid, images)
    url = f"/api/projects/{pid}/experiments"
    body = {"name": "h", "split_id": split.id, "hierarchy": HIERARCHY}
    error = assert_api_error(client.post(url, json=body), 422, "taxonomy_incomplete")
    assert sorted(error["details"]["classes"]) == ["cat", "dog", "fir", "oak"]
    ids = {c["name"]: c["id"] for c in client.get(f"/api/projects/{pid}/classes").json()["items"]}
    animal = make_class(session, pid, "animal")
    for name, parent in (("cat", animal), ("dog", animal), ("oak", animal)):
        client.patch(f"/api/projects/{pid}/classes/{ids[name]}", json={"parent_id": parent.id})
    error = assert_api_error(client.post(url, json=body), 422, "taxonomy_incomplete")
    assert error["details"]["classes"] == ["fir"]
    tree = make_class(session, pid, "tree")
    client.patch(f"/api/projects/{pid}/classes/{ids['fir']}", json={"parent_id": tree.id})
    # a binary level needs a root above the coarse groups with exactly two values
    binary = {**body, "hierarchy": {**HIERARCHY, "levels": ["binary", "coarse", "fine"]}}
    response = client.post(url, json={**binary, "name": "b"})
    assert response.status_code == 201, response.text  # binary = coarse here: two groups
    bad = {**body, "hierarchy": {**HIERARCHY, "levels": ["fine", "coarse"]}}
    assert_api_error(client.post(url, json=bad), 422, "invalid_hyperparameters")
    mixed = {**body, "label_smoothing": 0.1}
    error = assert_api_error(client.post(url, json=mixed), 422, "invalid_hyperparameters")
    assert "label smoothing" in error["message"]
    staged = {
        **body,
        "hierarchy": {
            **HIERARCHY,
            "curriculum": [
                {"level": "coarse", "epochs": 2, "lr": 0.01},
                {"level": "fine", "epochs": 3, "lr": 0.003},
            ],
        },
    }
    created = client.post(url, json=staged)
    assert created.status_code == 201, created.text
    config = created.json()["config"]
    assert config["epochs"] == 5  # the curriculum sets the epoch count
    assert config["hierarchy"]["groups"]["coarse"] == {
        "cat": "animal",
        "dog": "animal",
        "oak": "animal",
        "fir": "tree",
    }
    assert config["hierarchy"]["loss_weights"] == {"coarse": 0.3, "fine": 1.0}
    backwards = {
        **staged,
        "hierarchy": {**HIERARCHY, "curriculum": list(reversed(staged["hierarchy"]["curriculum"]))},
    }
    assert_api_error(client.post(url, json=backwards), 422, "invalid_hyperparameters")


def _nested(root: Path) -> Path:
    """coarse/fine/image, with one fine class also split by a domain folder below it."""
    class_folders(root / "solid", {"block": 2, "disc": 2})
    class_folders(root / "hollow", {"ring": 2})
    class_folders(root / "hollow" / "frame", {"warm": 1, "cool": 1})
    return root


def test_nested_class_folders_import_as_a_taxonomy_when_asked(
    client: TestClient,
    settings: Settings,
    engine: Engine,
    storage: Storage,
    project: Project,
    tmp_path: Path,
) -> None:
    pid = project.id
    archive = zip_folder(_nested(tmp_path / "nested"), tmp_path / "nested.zip")

    def post(path: str, flag: str | None) -> Response:
        with archive.open("rb") as handle:
            data = {"taxonomy_from_folders": flag} if flag is not None else {}
            return client.post(
                f"/api/projects/{pid}/{path}",
                files={"file": (archive.name, handle, "application/zip")},
                data=data,
            )

    # off (the default): the outer folder is the class, deeper folders the `folder` attribute
    plain = post("imports/analyze", None).json()
    assert plain["classes"] == ["hollow", "solid"] and plain["taxonomy"] == {}
    analysis = post("imports/analyze", "true")
    assert analysis.status_code == 200, analysis.text
    assert analysis.json()["classes"] == ["block", "disc", "frame", "ring"]
    assert analysis.json()["taxonomy"] == {
        "block": "solid",
        "disc": "solid",
        "frame": "hollow",
        "ring": "hollow",
    }
    assert_api_error(post("imports/analyze", "maybe"), 422, "invalid_option")
    started = post("imports", "true")
    assert started.status_code == 202, started.text
    with Session(engine) as session:
        job = job_service.claim_next_job(session, queue="light")
        assert job is not None and job.params["taxonomy_from_folders"] is True
    summary = import_dataset(JobContext(job, settings, engine))
    assert summary["images"] == 8
    tree = _tree(client, pid)  # type: ignore[arg-type]
    groups = {n["name"]: sorted(c["name"] for c in n["children"]) for n in tree["items"]}
    assert groups == {"solid": ["block", "disc"], "hollow": ["frame", "ring"]}
    images = client.get(f"/api/projects/{pid}/images", params={"page_size": 50}).json()["items"]
    folders = set()
    for image in images:
        detail = client.get(f"/api/projects/{pid}/images/{image['id']}").json()
        folders.add(detail["attributes"].get("folder"))
    assert folders == {None, "warm", "cool"}  # below the fine class: still the attribute


def test_nested_class_folders_of_mixed_depth_are_refused(
    client: TestClient, settings: Settings, project: Project, tmp_path: Path
) -> None:
    from app.main import create_app

    root = tmp_path / "datasets"
    _nested(root / "mixed")
    class_folders(root / "mixed", {"solid": 1})  # an image directly in the coarse folder
    configured = settings.model_copy(update={"import_roots": [root.resolve()]})
    with TestClient(create_app(configured), base_url="http://127.0.0.1") as api:
        url = f"/api/projects/{project.id}/imports/analyze"
        body = {"path": "mixed", "taxonomy_from_folders": True}
        error = assert_api_error(api.post(url, json=body), 422, "taxonomy_folder_depth")
        assert error["details"]["files"] == ["solid/solid_0.png"]
        assert "two folders deep" in error["message"]
        assert api.post(url, json={**body, "taxonomy_from_folders": False}).status_code == 200
        assert_api_error(
            api.post(url, json={**body, "taxonomy_from_folders": "yes please"}),
            422,
            "validation_error",
        )


def test_folder_taxonomy_refuses_a_fine_class_under_two_groups_and_other_formats(
    tmp_path: Path,
) -> None:
    from app.importers import read_source
    from app.importers.base import ImportProblem

    twice = tmp_path / "twice"
    class_folders(twice / "solid", {"disc": 1})
    class_folders(twice / "hollow", {"disc": 1})
    with pytest.raises(ImportProblem) as refused:
        read_source(twice, "classification", taxonomy_from_folders=True)
    assert refused.value.code == "invalid_taxonomy" and "'disc'" in refused.value.message
    both = tmp_path / "both"
    class_folders(both / "solid", {"disc": 1})
    class_folders(both / "disc", {"dot": 1})
    with pytest.raises(ImportProblem) as refused:
        read_source(both, "classification", taxonomy_from_folders=True)
    assert refused.value.details["classes"] == ["disc"]
    write_hierarchical(tmp_path / "csv", images=5, size=32)  # class/domain folders + taxonomy.csv
    csv_first = read_source(tmp_path / "csv", "classification")
    assert csv_first.taxonomy["ring"] == "hollow"
    with pytest.raises(ImportProblem) as refused:  # domains are not fine classes of `ring`
        read_source(tmp_path / "csv", "classification", taxonomy_from_folders=True)
    assert refused.value.code == "invalid_taxonomy"  # one domain folder under every class
