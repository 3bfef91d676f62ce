"""Domain-generalisation reports: one queued experiment per held-out group of a
leave-one-group-out family; figures per group, mean gap and bootstrap interval once trained."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.models import Experiment, Image, Job, Project
from app.services.dg_reports import bootstrap_ci
from app.storage import Storage
from tests.factories import make_digits, make_split
from tests.helpers import assert_api_error

RECIPE = {"model": "small_cnn", "epochs": 1, "image_size": 32, "batch_size": 16, "warmup_epochs": 0}


def _family(client: TestClient, session: Session, storage: Storage, pid: int) -> list[int]:
    images = make_digits(session, storage, pid, per_class=4)
    for index, image in enumerate(images):
        image.attributes = {"site": "abc"[index % 3]}
        session.add(image)
    session.commit()
    response = client.post(
        f"/api/projects/{pid}/splits",
        json={"name": "sites", "strategy": "leave_one_group_out", "group_attribute": "site"},
    )
    assert response.status_code == 201, response.text
    return [m["id"] for m in response.json()["family_members"]]


# Training end to end is database-agnostic; the API tests around it run on both databases.
@pytest.mark.sqlite_only
def test_report_queues_one_experiment_per_group_and_reports_the_gaps(
    client: TestClient, session: Session, storage: Storage, project: Project
) -> None:
    from workers.handlers.train import run_experiment

    pid = project.id
    assert pid is not None
    family = _family(client, session, storage, pid)
    assert len(family) == 3
    response = client.post(
        f"/api/projects/{pid}/dg-reports", json={"split_id": family[1], "config": RECIPE}
    )
    assert response.status_code == 202, response.text
    body = response.json()
    report = body["report"]
    assert len(body["jobs"]) == 3 and {j["status"] for j in body["jobs"]} == {"queued"}
    assert sorted(g["group"] for g in report["groups"]) == ["a", "b", "c"]
    assert {g["split_id"] for g in report["groups"]} == set(family)
    assert report["mean_gap"] is None and report["ci95"] is None and report["metric"] == "accuracy"

    engine = session.get_bind()

    @contextmanager
    def open_session() -> Iterator[Session]:
        with Session(engine, expire_on_commit=False) as inner:
            yield inner

    for job in session.exec(select(Job).where(Job.kind == "train")).all():  # as the worker would
        session.delete(job)
    session.commit()
    for group in report["groups"]:
        run_experiment(open_session, storage, group["experiment_id"])
    session.expire_all()
    read = client.get(f"/api/projects/{pid}/dg-reports/{report['id']}").json()
    assert read["completed"] == 3
    for group in read["groups"]:
        experiment = session.get(Experiment, group["experiment_id"])
        assert experiment is not None and experiment.status == "completed"
        assert group["in_domain"] == experiment.provenance["val_metrics"]["accuracy"]
        assert group["held_out"] == experiment.provenance["test_metrics"]["accuracy"]
        assert group["gap"] == group["in_domain"] - group["held_out"]
    gaps = [g["gap"] for g in read["groups"]]
    assert abs(read["mean_gap"] - sum(gaps) / 3) < 1e-12
    low, high = read["ci95"]
    assert min(gaps) <= low <= read["mean_gap"] <= high <= max(gaps)
    listing = client.get(f"/api/projects/{pid}/dg-reports").json()
    assert listing["total"] == 1 and listing["items"][0]["id"] == report["id"]


def test_report_needs_a_group_family_and_a_valid_recipe(
    client: TestClient, session: Session, storage: Storage, project: Project
) -> None:
    pid = project.id
    assert pid is not None
    family = _family(client, session, storage, pid)
    plain = make_split(session, pid, session.exec(select(Image)).all())
    url = f"/api/projects/{pid}/dg-reports"
    error = assert_api_error(
        client.post(url, json={"split_id": plain.id}), 422, "not_a_group_family"
    )
    assert "leave_one_group_out" in error["message"]
    assert_api_error(client.post(url, json={"split_id": 99999}), 422, "unknown_split")
    assert_api_error(
        client.post(url, json={"split_id": family[0], "config": {"epochs": 0}}),
        422,
        "invalid_hyperparameters",
    )
    assert_api_error(client.post(url, json={"split": 1}), 422, "validation_error")
    assert session.exec(select(Experiment)).first() is None  # nothing half-created
    assert_api_error(client.get(f"{url}/12345"), 404, "dg_report_not_found")


def test_bootstrap_interval_brackets_the_mean() -> None:
    assert bootstrap_ci([0.1]) is None
    low, high = bootstrap_ci([0.1, 0.2, 0.3, 0.4])  # type: ignore[misc]
    assert 0.1 <= low < 0.25 < high <= 0.4
    assert bootstrap_ci([0.2, 0.2, 0.2]) == pytest.approx((0.2, 0.2))
