"""Hierarchical semantic segmentation through the API: the recipe's checks against the
project's taxonomy (on SQLite and PostgreSQL), then, in this process through the real
handlers, taxonomy.csv import → staged per-pixel training → per-level evaluation (API and
page) → ONNX export of the gated model with parity."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.config import Settings
from app.storage import Storage
from benchmarks.synthetic import write_dataset
from tests.api.test_segmentation import run_job
from tests.factories import make_class, make_project
from tests.helpers import assert_api_error
from tests.importers.builders import import_folder

pytestmark = [pytest.mark.slow]

HIERARCHY: dict[str, Any] = {
    "levels": ["binary", "coarse", "fine"],
    "gated_inference": True,
    "curriculum": [
        {"level": "coarse", "epochs": 1, "lr": 0.003},
        {"level": "fine", "epochs": 1, "lr": 0.003},
    ],
}


def _project(session: Session, engine: Engine, storage: Storage, root: Path, taxonomy: bool):  # type: ignore[no-untyped-def]
    project = make_project(session, name="Shapes", task_type="segmentation")
    assert project.id is not None
    write_dataset("segmentation/hierarchy", root, images=20, size=32)
    if not taxonomy:
        (root / "taxonomy.csv").unlink()
    assert import_folder(session, engine, storage, project.id, root).status == "succeeded"
    return project


def _split(client: TestClient, pid: int) -> int:
    response = client.post(
        f"/api/projects/{pid}/splits",
        json={"name": "main", "ratios": {"train": 0.6, "val": 0.2, "test": 0.2}},
    )
    assert response.status_code in (200, 201), response.text
    body = response.json()
    return int((body["items"][0] if "items" in body else body)["id"])


def test_hierarchical_segmentation_recipe_checks_the_taxonomy(
    client: TestClient, session: Session, engine: Engine, storage: Storage, tmp_path: Path
) -> None:
    project = _project(session, engine, storage, tmp_path / "data", taxonomy=False)
    pid = project.id
    assert pid is not None
    url = f"/api/projects/{pid}/experiments"
    body = {"name": "h", "split_id": _split(client, pid), "model": "unet_small"}
    body["hierarchy"] = HIERARCHY
    # the fine classes need parents; the background needs none
    error = assert_api_error(client.post(url, json=body), 422, "taxonomy_incomplete")
    assert sorted(error["details"]["classes"]) == ["circle", "cross", "square", "triangle"]
    ids = {c["name"]: c["id"] for c in client.get(f"/api/projects/{pid}/classes").json()["items"]}
    compact, spiky = make_class(session, pid, "compact"), make_class(session, pid, "spiky")
    for name, parent in (("circle", compact), ("square", compact), ("triangle", spiky)):
        patched = client.patch(
            f"/api/projects/{pid}/classes/{ids[name]}", json={"parent_id": parent.id}
        )
        assert patched.status_code == 200, patched.text
    error = assert_api_error(client.post(url, json=body), 422, "taxonomy_incomplete")
    assert error["details"]["classes"] == ["cross"]
    client.patch(f"/api/projects/{pid}/classes/{ids['cross']}", json={"parent_id": spiky.id})
    # binary without a root: background, compact and spiky are three groups
    error = assert_api_error(client.post(url, json=body), 422, "taxonomy_levels")
    assert error["details"]["groups"] == ["background", "compact", "spiky"]
    coarse = {**body, "hierarchy": {**HIERARCHY, "levels": ["coarse", "fine"], "curriculum": []}}
    created = client.post(url, json=coarse)
    assert created.status_code == 201, created.text
    groups = created.json()["config"]["hierarchy"]["groups"]["coarse"]
    assert groups == {
        "background": "background",
        "circle": "compact",
        "square": "compact",
        "triangle": "spiky",
        "cross": "spiky",
    }
    # classification's optional parts are refused by name
    for part in ({"adapters": "film"}, {"distill": {"kl_weight": 1}}, {"freeze_early_layers": 1}):
        bad = {**body, "hierarchy": {**HIERARCHY, **part}}
        error = assert_api_error(client.post(url, json=bad), 422, "invalid_hyperparameters")
        assert next(iter(part)) in error["message"]


@pytest.mark.sqlite_only
def test_hierarchical_segmentation_trains_evaluates_and_exports(
    client: TestClient,
    session: Session,
    engine: Engine,
    storage: Storage,
    settings: Settings,
    tmp_path: Path,
) -> None:
    from workers.handlers.evaluate import evaluate
    from workers.handlers.export import run_export_job
    from workers.handlers.train import run_experiment

    project = _project(session, engine, storage, tmp_path / "data", taxonomy=True)
    pid = project.id
    assert pid is not None
    tree = client.get(f"/api/projects/{pid}/taxonomy").json()
    assert tree["depth"] == 3 and "background" in tree["leaves"]
    created = client.post(
        f"/api/projects/{pid}/experiments",
        json={
            "name": "staged",
            "split_id": _split(client, pid),
            "model": "unet_small",
            "decoder_channels": 4,
            "image_size": 32,
            "batch_size": 8,
            "hierarchy": HIERARCHY,
        },
    )
    assert created.status_code == 201, created.text
    eid = created.json()["id"]

    @contextmanager
    def open_session() -> Iterator[Session]:
        with Session(engine, expire_on_commit=False) as inner:
            yield inner

    assert run_experiment(open_session, storage, eid)["status"] == "completed"
    base = f"/api/projects/{pid}/experiments/{eid}"
    series = client.get(f"{base}/metrics").json()["series"]
    assert [p["value"] for p in series["val/stage"]] == [1.0, 2.0]
    assert len(series["train/binary_loss"]) == 2 and len(series["train/fine_loss"]) == 1

    assert client.post(f"{base}/evaluation", json={"subsets": ["val", "test"]}).status_code == 202
    run_job(settings, engine, "compute", evaluate)
    aggregate = client.get(f"{base}/evaluation").json()["aggregate"]
    assert aggregate["fine/miou"] == aggregate["miou"]
    for key in ("coarse/miou", "binary/miou", "coarse/implied_miou", "binary/implied_miou"):
        assert 0.0 <= aggregate[key] <= 1.0, key
    assert aggregate["violations"] == 0  # gated: every pixel's fine class is in its routed group
    levels = aggregate["levels"]
    assert list(levels) == ["binary", "coarse", "fine"]
    assert levels["binary"]["labels"] == ["background", "shape"]
    assert levels["coarse"]["labels"] == ["background", "compact", "spiky"]
    assert levels["fine"]["labels"] == ["background", "circle", "square", "triangle", "cross"]
    pixels = sum(map(sum, levels["fine"]["matrix"]))
    assert pixels == sum(map(sum, aggregate["confusion"]["matrix"]))
    assert sum(map(sum, levels["coarse"]["matrix"])) == pixels  # every valid pixel has a group
    assert "coarse/miou" in aggregate["by_subset"]["test"]
    page = client.get(f"/projects/{pid}/evaluation", params={"experiment": eid})
    assert page.status_code == 200
    assert 'data-testid="level-coarse"' in page.text and "Coarse · mIoU " in page.text

    exported = client.post(f"{base}/exports", json={"format": "onnx", "checkpoint": "best"})
    assert exported.status_code == 202, exported.text
    result = run_job(settings, engine, "compute", run_export_job)
    assert result["valid"] is True, result
