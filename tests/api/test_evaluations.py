"""Evaluation API without a model: validation, the job it queues, reset, results queries."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.models import Evaluation, EvaluationResult, Job, Project
from app.services import evaluations as service
from app.storage import Storage
from tests.factories import make_image, make_split
from tests.helpers import assert_api_error
from tests.support.evaluation import complete_evaluation, make_experiment


def _setup(session: Session, storage: Storage, project: Project, **kw: object):  # type: ignore[no-untyped-def]
    assert project.id is not None
    images = [make_image(session, storage, project.id, labels=[name]) for name in "abcabcabcabc"]
    split = make_split(session, project.id, images, ratios=(0.5, 0.25, 0.25))
    experiment = make_experiment(session, storage, project.id, split, **kw)  # type: ignore[arg-type]
    return images, split, experiment


def _url(project: Project, experiment_id: int, tail: str = "evaluation") -> str:
    return f"/api/projects/{project.id}/experiments/{experiment_id}/{tail}"


def test_checkpoints_lists_only_existing_files(
    client: TestClient, session: Session, storage: Storage, project: Project
) -> None:
    _, _, experiment = _setup(session, storage, project, checkpoints=("best",), missing=("last",))
    response = client.get(_url(project, experiment.id, "checkpoints"))
    assert response.status_code == 200
    assert [c["name"] for c in response.json()["items"]] == ["best"]
    assert response.json()["items"][0]["bytes"] == len(b"placeholder")
    assert_api_error(client.get(_url(project, 9999, "checkpoints")), 404, "experiment_not_found")


def test_start_queues_an_evaluate_job_and_validates(
    client: TestClient, session: Session, storage: Storage, project: Project
) -> None:
    _, _, experiment = _setup(session, storage, project, missing=("extra",))
    url = _url(project, experiment.id)
    assert_api_error(client.get(url), 404, "evaluation_not_found")
    assert_api_error(client.post(url, json={"checkpoint": "extra"}), 422, "unknown_checkpoint")
    assert_api_error(client.post(url, json={"subsets": ["holdout"]}), 422, "validation_error")
    assert_api_error(client.post(url, json={"batch_size": 0}), 422, "validation_error")

    response = client.post(url)  # no body: best checkpoint on the test subset
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["job"]["kind"] == "evaluate" and body["job"]["status"] == "queued"
    assert body["evaluation"]["checkpoint"] == "best"
    assert body["evaluation"]["subsets"] == ["test"]
    assert body["job"]["params"]["evaluation_id"] == body["evaluation"]["id"]

    assert_api_error(client.post(url), 409, "evaluation_running")
    got = client.get(url).json()
    assert got["status"] == "queued" and got["job"]["id"] == body["job"]["id"]

    # reset deletes at once and cancels the queued job
    assert client.delete(url).status_code == 204
    assert_api_error(client.get(url), 404, "evaluation_not_found")
    session.expire_all()
    assert session.get(Job, body["job"]["id"]).status == "cancelled"  # type: ignore[union-attr]

    again = client.post(
        url, json={"checkpoint": "last", "subsets": ["val", "test"], "tta": ["hflip"]}
    )
    assert again.status_code == 202
    assert again.json()["evaluation"]["options"]["tta"] == ["hflip"]


def test_experiment_states_that_cannot_be_evaluated(
    client: TestClient, session: Session, storage: Storage, project: Project, sketch_task: str
) -> None:
    _, split, running = _setup(session, storage, project, status="running")
    assert_api_error(client.post(_url(project, running.id)), 409, "experiment_running")
    empty = make_experiment(session, storage, project.id, split, checkpoints=(), name="none")  # type: ignore[arg-type]
    assert_api_error(client.post(_url(project, empty.id)), 409, "no_checkpoint")
    sketch = client.post("/api/projects", json={"name": "Sketches", "task_type": sketch_task})
    other = session.get(Project, sketch.json()["id"])
    assert other is not None and other.id is not None
    image = make_image(session, storage, other.id, labels=["a"])
    det_split = make_split(session, other.id, [image, image], ratios=(0.5, 0.0, 0.5))
    det_exp = make_experiment(session, storage, other.id, det_split, name="det")
    assert_api_error(client.post(_url(other, det_exp.id)), 409, "feature_unavailable")


def test_tasks_report_evaluate_for_classification(client: TestClient) -> None:
    tasks = {t["key"]: t for t in client.get("/api/tasks").json()["items"]}
    assert "evaluate" in tasks["classification"]["features"]


def _fake_results(
    session: Session,
    storage: Storage,
    evaluation_id: int,
    images: list,
    classes: int = 3,  # type: ignore[type-arg]
) -> None:
    outcomes = [
        (image.id, "test" if i % 2 else "val", i % classes, (i * 2) % classes)
        for i, image in enumerate(images)
    ]
    complete_evaluation(
        session, storage, evaluation_id, outcomes, ["a", "b", "c"], aggregate={"accuracy": 0.5}
    )


def test_results_filter_sort_and_paginate(
    client: TestClient, session: Session, storage: Storage, project: Project
) -> None:
    images, _, experiment = _setup(session, storage, project)
    url = _url(project, experiment.id)
    started = client.post(url, json={"subsets": ["val", "test"]}).json()
    _fake_results(session, storage, started["evaluation"]["id"], images)
    got = client.get(url).json()
    assert got["status"] == "completed" and got["aggregate"]["accuracy"] == 0.5
    assert got["stale"] is False
    # training again rewrites the checkpoint: the evaluation says it is stale
    session.refresh(experiment)
    experiment.checkpoints = {
        **experiment.checkpoints,
        "best": {**experiment.checkpoints["best"], "saved_at": "2026-11-24T00:00:00+00:00"},
    }
    session.add(experiment)
    session.commit()
    assert client.get(url).json()["stale"] is True

    results = f"{url}/results"
    everything = client.get(results, params={"page_size": 500}).json()
    assert everything["total"] == len(images)
    scores = [r["score"] for r in everything["items"]]
    assert scores == sorted(scores, reverse=True)

    cell = client.get(results, params={"true_class": 1, "predicted_class": 2}).json()
    expected = [i for i in range(len(images)) if i % 3 == 1 and (i * 2) % 3 == 2]
    assert cell["total"] == len(expected) > 0
    assert all(
        r["prediction"]["truth"][0]["index"] == 1 and r["prediction"]["predicted"][0]["index"] == 2
        for r in cell["items"]
    )
    confusion = client.get(f"{url}/confusion").json()
    assert confusion["matrix"][1][2] == len(expected) and confusion["background"] is False
    assert sum(map(sum, confusion["matrix"])) == len(images)
    test_only = client.get(f"{url}/confusion", params={"subset": "test"}).json()
    assert sum(map(sum, test_only["matrix"])) == sum(1 for i in range(len(images)) if i % 2)
    assert test_only["subset"] == "test" and test_only["subsets"] == ["val", "test"]
    assert cell["items"][0]["thumbnail_url"].endswith(
        f"/images/{cell['items'][0]['image_id']}/thumbnail"
    )

    wrong = client.get(results, params={"outcome": "incorrect", "subset": "test"}).json()
    assert wrong["total"] == sum(1 for i in range(len(images)) if i % 2 and i % 3 != 0)
    assert all(not r["correct"] and r["subset"] == "test" for r in wrong["items"])

    by_loss = client.get(results, params={"sort": "loss", "page_size": 5, "page": 2}).json()
    assert [r["loss"] for r in by_loss["items"]] == [6.0, 5.0, 4.0, 3.0, 2.0]
    assert_api_error(client.get(results, params={"sort": "random"}), 422, "invalid_sort")
    assert_api_error(client.get(results, params={"outcome": "maybe"}), 422, "validation_error")

    one = client.get(f"{results}/{cell['items'][0]['id']}")
    assert one.status_code == 200 and one.json()["image_id"] == cell["items"][0]["image_id"]

    # A re-run keeps the current results until it completes; a failed re-run loses nothing.
    rerun = client.post(url).json()
    current = client.get(url).json()
    assert current["id"] == started["evaluation"]["id"] and current["status"] == "completed"
    assert current["attempt"]["status"] == "queued"
    service.mark_ended(session, rerun["evaluation"]["id"], "failed", "no CUDA device")
    current = client.get(url).json()
    assert current["id"] == started["evaluation"]["id"] and current["aggregate"]["accuracy"] == 0.5
    assert current["attempt"]["status"] == "failed" and "CUDA" in current["attempt"]["error"]
    assert client.get(results).json()["total"] == len(images)
    # ... and a re-run that completes replaces it, rows and all.
    third = client.post(url).json()
    _fake_results(session, storage, third["evaluation"]["id"], images[:4])
    assert client.get(url).json()["id"] == third["evaluation"]["id"]
    assert len(session.exec(select(EvaluationResult)).all()) == 4
    assert [e.id for e in session.exec(select(Evaluation)).all()] == [third["evaluation"]["id"]]


def test_artefacts_are_served_by_plain_name_only(
    client: TestClient, session: Session, storage: Storage, project: Project
) -> None:
    images, _, experiment = _setup(session, storage, project)
    url = _url(project, experiment.id)
    started = client.post(url, json={"subsets": ["val", "test"]}).json()
    evaluation_id = started["evaluation"]["id"]
    _fake_results(session, storage, evaluation_id, images)
    folder = service.evaluation_dir(storage, project.id, experiment.id, evaluation_id)  # type: ignore[arg-type]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mask-1.png").write_bytes(b"\x89PNG fake")
    got = client.get(f"{url}/artefacts/mask-1.png")
    assert got.status_code == 200 and got.headers["content-type"] == "image/png"
    assert got.content == b"\x89PNG fake"
    assert_api_error(client.get(f"{url}/artefacts/missing.png"), 404, "artefact_not_found")
    for bad in ("..%2Fsecret.png", "mask.exe", ".hidden.png"):
        response = client.get(f"{url}/artefacts/{bad}")
        assert response.status_code in (404, 422)
        assert "error" in response.json()
