"""The gate API's refusals (fast, no worker): models without a segmentation head, unknown
experiments, untrained dual-head experiments, empty or oversized test sets; and the rules a
dual-head experiment reads before any evaluation (the seed's defaults)."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlmodel import Session, select

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


def test_rollback_rule_against_a_named_baseline_picks_the_export_default(
    client: TestClient, session: Session, storage: Storage, project: Project
) -> None:
    from app.models import MetricPoint

    assert project.id is not None
    images = [make_image(session, storage, project.id, labels=[n]) for n in "abab"]
    split = make_split(session, project.id, images, ratios=(0.5, 0.25, 0.25))
    other_split = make_split(session, project.id, images, ratios=(0.5, 0.25, 0.25), seed=1)
    made = {}
    for name, model, which in (
        ("elsewhere", "small_cnn", other_split),
        ("baseline", "small_cnn", split),
        ("dual", "dualhead_small_cnn", split),  # the newest: the export page's usual default
    ):
        experiment = make_experiment(session, storage, project.id, which, name=name)
        experiment.config = {"model": model}
        experiment.provenance = {**experiment.provenance, "best": {"epoch": 2}}
        session.add(experiment)
        made[name] = experiment
    session.commit()
    points = {"baseline": {"val/acc": 0.90}, "dual": {"val/acc": 0.892, "val/seg_miou": 0.7}}
    for name, values in points.items():
        for key, value in values.items():
            for epoch, v in ((1, 0.1), (2, value)):
                session.add(
                    MetricPoint(
                        experiment_id=made[name].id, step=epoch, epoch=epoch, key=key, value=v
                    )
                )
    session.commit()
    url = f"/api/projects/{project.id}/experiments/{made['dual'].id}/gate"
    assert client.get(url).json()["rollback"] is None
    assert_api_error(
        client.patch(url, json={"baseline_experiment_id": made["elsewhere"].id}),
        422,
        "invalid_baseline",
    )
    assert_api_error(
        client.patch(url, json={"baseline_experiment_id": made["dual"].id}),
        422,
        "invalid_baseline",
    )
    named = client.patch(url, json={"baseline_experiment_id": made["baseline"].id})
    assert named.status_code == 200, named.text
    verdict = named.json()["rollback"]
    # 0.8 points below the baseline: more than the 0.5 the rule allows
    assert verdict["roll_back"] and verdict["better_experiment_id"] == made["baseline"].id
    assert "points below" in verdict["reasons"][0] and verdict["seg_miou"] == 0.7
    page = client.get(f"/projects/{project.id}/export").text
    assert f'<option value="{made["baseline"].id}" selected>' in page

    point = session.exec(
        select(MetricPoint).where(
            MetricPoint.experiment_id == made["dual"].id,
            MetricPoint.key == "val/acc",
            MetricPoint.epoch == 2,
        )
    ).one()
    point.value = 0.897  # 0.3 points below: within the rule
    session.add(point)
    session.commit()
    kept = client.get(url).json()["rollback"]
    assert not kept["roll_back"] and kept["better_experiment_id"] == made["dual"].id
    page = client.get(f"/projects/{project.id}/export").text
    assert f'<option value="{made["dual"].id}" selected>' in page
