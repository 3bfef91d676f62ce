"""Anomaly detection's data rules through the API: new splits keep anomalous images out of
train (unless asked not to), k-fold needs a test subset for them, a split without normal
training images cannot train, supervised mode needs anomalies, and the decision settings
(the threshold) are read, changed and restored without retraining."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlmodel import Session

from app.models import Project
from app.storage import Storage
from tests.factories import make_image, make_project
from tests.helpers import assert_api_error
from tests.support.evaluation import make_experiment


def anomaly_project(
    session: Session,
    storage: Storage,
    normal: int = 20,
    anomalous: int = 10,
    name: str = "Surfaces",
) -> Project:
    project = make_project(session, name=name, task_type="anomaly")
    assert project.id is not None
    for _ in range(normal):
        make_image(session, storage, project.id, labels=["normal"])
    for _ in range(anomalous):
        make_image(session, storage, project.id, labels=["anomalous"])
    return project


def subsets_of(client: TestClient, project_id: int, split_id: int) -> dict[str, dict[str, int]]:
    split = client.get(f"/api/projects/{project_id}/splits/{split_id}").json()
    return {s["subset"]: s["classes"] for s in split["subsets"]}


def test_new_splits_keep_anomalous_images_out_of_train(
    client: TestClient, session: Session, storage: Storage
) -> None:
    project = anomaly_project(session, storage)
    url = f"/api/projects/{project.id}/splits"
    preview = client.post(
        f"{url}/preview", json={"ratios": {"train": 0.6, "val": 0.2, "test": 0.2}}
    )
    assert preview.status_code == 200, preview.text
    body = preview.json()
    assert any(w["code"] == "kept_out_of_train" for w in body["warnings"])
    assert not any(w["code"] in ("class_missing", "ratio_not_met") for w in body["warnings"])
    subsets = {s["subset"]: s["classes"] for s in body["splits"][0]["subsets"]}
    assert "anomalous" not in subsets["train"] and subsets["train"]["normal"] == 12
    assert subsets["val"]["anomalous"] == 5 and subsets["test"]["anomalous"] == 5

    saved = client.post(
        url, json={"name": "default", "ratios": {"train": 0.6, "val": 0.2, "test": 0.2}}
    )
    assert saved.status_code == 201, saved.text
    assert "anomalous" not in subsets_of(client, project.id, saved.json()["id"])["train"]  # type: ignore[arg-type]

    mixed = client.post(url, json={"name": "mixed", "keep_out_of_train": []})
    assert mixed.status_code == 201
    assert subsets_of(client, project.id, mixed.json()["id"])["train"]["anomalous"] == 8  # type: ignore[arg-type]

    assert_api_error(
        client.post(f"{url}/preview", json={"strategy": "stratified_kfold", "k": 3}),
        422,
        "nowhere_to_keep_out",
    )
    folds = client.post(
        f"{url}/preview", json={"strategy": "stratified_kfold", "k": 3, "test_ratio": 0.2}
    ).json()
    for subset in folds["splits"][0]["subsets"]:
        if subset["subset"] != "test":
            assert "anomalous" not in subset["classes"]
    assert_api_error(
        client.post(f"{url}/preview", json={"ratios": {"train": 1.0}}), 422, "nowhere_to_keep_out"
    )


def test_training_needs_normal_images_and_supervised_needs_anomalies(
    client: TestClient, session: Session, storage: Storage
) -> None:
    project = anomaly_project(session, storage, normal=0, anomalous=10)
    split = client.post(
        f"/api/projects/{project.id}/splits", json={"name": "s", "keep_out_of_train": []}
    ).json()
    error = assert_api_error(
        client.post(
            f"/api/projects/{project.id}/experiments", json={"name": "e", "split_id": split["id"]}
        ),
        422,
        "no_normal_images",
    )
    assert error["details"]["train_normal"] == 0 and "normal" in error["message"]

    normal = anomaly_project(session, storage, normal=10, anomalous=4, name="Mixed")
    split = client.post(f"/api/projects/{normal.id}/splits", json={"name": "s"}).json()
    experiments = f"/api/projects/{normal.id}/experiments"
    assert_api_error(
        client.post(experiments, json={"name": "e", "split_id": split["id"], "mode": "supervised"}),
        422,
        "no_anomalous_images",
    )
    created = client.post(experiments, json={"name": "e", "split_id": split["id"]})
    assert created.status_code == 201, created.text
    config = created.json()["config"]
    assert config["model"] == "anomaly_unet" and config["mode"] == "auto"
    assert config["augment"]["rotation"] == 0 and config["target_fpr"] == 0.01
    assert_api_error(
        client.post(experiments, json={"name": "f", "split_id": split["id"], "target_fpr": 0.9}),
        422,
        "invalid_hyperparameters",
    )


def test_threshold_is_read_changed_and_restored_without_retraining(
    client: TestClient, session: Session, storage: Storage
) -> None:
    project = anomaly_project(session, storage, normal=6, anomalous=2)
    assert project.id is not None
    split = client.post(f"/api/projects/{project.id}/splits", json={"name": "s"}).json()
    from app.models import Split

    split_row = session.get(Split, split["id"])
    assert split_row is not None
    untrained = make_experiment(session, storage, project.id, split_row, name="untrained")
    base = f"/api/projects/{project.id}/experiments"
    assert_api_error(
        client.put(f"{base}/{untrained.id}/decision", json={"threshold": 0.5}),
        409,
        "not_calibrated",
    )
    trained = make_experiment(
        session,
        storage,
        project.id,
        split_row,
        name="trained",
        provenance={"threshold": 0.42, "threshold_rule": "max_f1", "map_range": [0, 1]},
    )
    url = f"{base}/{trained.id}/decision"
    got = client.get(url).json()
    assert got["decision"] == {"threshold": 0.42} and got["trained"] == {"threshold": 0.42}
    assert got["changed"] is False and got["schema"]["properties"]["threshold"]

    changed = client.put(url, json={"threshold": 0.7})
    assert changed.status_code == 200, changed.text
    assert changed.json()["decision"] == {"threshold": 0.7} and changed.json()["changed"]
    assert client.get(f"{base}/{trained.id}").json()["provenance"]["threshold"] == 0.42
    assert_api_error(client.put(url, json={"threshold": "high"}), 422, "invalid_decision")
    assert_api_error(client.put(url, json={"threshold": 0.5, "other": 1}), 422, "invalid_decision")
    assert_api_error(client.put(url, json=[0.5]), 422, "invalid_body")
    assert client.get(url).json()["decision"] == {"threshold": 0.7}  # bad input changed nothing

    restored = client.delete(url)
    assert restored.status_code == 200 and restored.json()["decision"] == {"threshold": 0.42}

    regression = make_project(session, name="Values", task_type="regression")
    image = make_image(session, storage, regression.id)  # type: ignore[arg-type]
    from tests.factories import make_split

    other_split = make_split(session, regression.id, [image], ratios=(1.0, 0.0, 0.0))  # type: ignore[arg-type]
    other = make_experiment(session, storage, regression.id, other_split, name="r")  # type: ignore[arg-type]
    assert_api_error(
        client.get(f"/api/projects/{regression.id}/experiments/{other.id}/decision"),
        409,
        "no_decision_settings",
    )


def test_feature_memory_methods_are_offered_only_with_local_pretrained_weights(
    client: TestClient, session: Session, storage: Storage
) -> None:
    from app.storage import atomic_write_json

    def catalog() -> dict[str, str | None]:
        items = client.get("/api/catalog/models", params={"task": "anomaly"}).json()["items"]
        return {m["id"]: m["unavailable"] for m in items}

    unknown = catalog()  # no worker has looked yet
    assert unknown["anomaly_unet"] is None and unknown["conv_autoencoder"] is None
    assert "no worker has looked yet" in (unknown["padim_resnet18"] or "")
    atomic_write_json(storage.hardware_path, {"cuda": False, "pretrained": []})
    missing = catalog()
    assert "needs pretrained resnet18 weights" in (missing["patchcore_resnet18"] or "")
    project = anomaly_project(session, storage, normal=4, anomalous=1)
    client.post(f"/api/projects/{project.id}/splits", json={"name": "s"})
    page = client.get(f"/projects/{project.id}/training").text
    assert re.search(r'<option value="padim_resnet18"\s+disabled', page)
    assert "unavailable: needs pretrained resnet18 weights" in page
    atomic_write_json(storage.hardware_path, {"cuda": False, "pretrained": ["resnet18"]})
    assert catalog()["padim_resnet18"] is None
    page = client.get(f"/projects/{project.id}/training").text
    assert not re.search(r'<option value="padim_resnet18"\s+disabled', page)


def test_leave_one_group_out_keeps_anomalies_out_of_every_train(
    client: TestClient, session: Session, storage: Storage
) -> None:
    project = make_project(session, name="Lines", task_type="anomaly")
    assert project.id is not None
    for index in range(24):
        label = "anomalous" if index % 4 == 0 else "normal"
        make_image(
            session, storage, project.id, labels=[label], attributes={"line": f"L{index % 3}"}
        )
    response = client.post(
        f"/api/projects/{project.id}/splits/preview",
        json={"strategy": "leave_one_group_out", "group_attribute": "line"},
    )
    assert response.status_code == 200, response.text
    planned = response.json()["splits"]
    assert len(planned) == 3
    for split in planned:
        subsets = {s["subset"]: s["classes"] for s in split["subsets"]}
        assert "anomalous" not in subsets["train"] and subsets["test"].get("anomalous")
