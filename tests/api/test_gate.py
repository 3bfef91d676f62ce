"""The gate API's refusals (fast, no worker): models without a segmentation head, unknown
experiments, untrained dual-head experiments, empty or oversized test sets; and the rules a
dual-head experiment reads before any evaluation (the seed's defaults)."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlmodel import Session

from app.models import Project
from app.storage import Storage
from tests.factories import make_image, make_split
from tests.helpers import assert_api_error
from tests.support.evaluation import make_experiment


def _experiment(session: Session, storage: Storage, project: Project, model: str, **kw: object):  # type: ignore[no-untyped-def]
    assert project.id is not None
    images = [make_image(session, storage, project.id, labels=[n]) for n in "abab"]
    split = make_split(session, project.id, images, ratios=(0.5, 0.25, 0.25))
    experiment = make_experiment(session, storage, project.id, split, name=model, **kw)  # type: ignore[arg-type]
    experiment.config = {"model": model}
    session.add(experiment)
    session.commit()
    return experiment


def test_gate_refusals_and_defaults(
    client: TestClient, session: Session, storage: Storage, project: Project
) -> None:
    flat = _experiment(session, storage, project, "small_cnn")
    base = f"/api/projects/{project.id}/experiments"
    assert_api_error(client.get(f"{base}/{flat.id}/gate"), 409, "no_gate")
    assert_api_error(client.get(f"{base}/999999/gate"), 404, "experiment_not_found")
    files = [("files", ("a.png", b"x", "image/png"))]
    assert_api_error(client.post(f"{base}/{flat.id}/gate/test-set", files=files), 409, "no_gate")

    dual = _experiment(session, storage, project, "dualhead_small_cnn", status="queued")
    read = client.get(f"{base}/{dual.id}/gate")
    assert read.status_code == 200, read.text
    body = read.json()
    assert body["rules"]["default_min_ratio"] == 0.15 and body["rules"]["min_component_px"] == 500
    assert body["calibration"]["per_class"] == {} and body["out_of_domain"]["images"] == 0
    assert_api_error(
        client.post(f"{base}/{dual.id}/gate/test-set", files=files), 409, "not_trained"
    )
    assert_api_error(
        client.patch(f"{base}/{dual.id}/gate", json={"min_ratio": {"a": 2}}), 422, "invalid_gate"
    )
    changed = client.patch(f"{base}/{dual.id}/gate", json={"min_ratio": {"a": 0.3}})
    assert changed.status_code == 200 and changed.json()["rules"]["min_ratio"] == {"a": 0.3}
