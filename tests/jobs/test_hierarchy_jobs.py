"""Tiny hierarchical experiments end to end in real worker processes: taxonomy.csv import,
staged training (classification with the optional parts on: a frozen first backbone stage,
FiLM adapters per group, distillation from the coarse stage; semantic segmentation with
per-pixel heads), per-level evaluation, ONNX export with a valid parity check."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.storage import Storage
from benchmarks.synthetic import write_dataset
from benchmarks.synthetic.hierarchy import write_hierarchical
from tests.factories import make_project
from tests.importers.builders import import_folder
from tests.jobs.conftest import PoolRunner
from tests.jobs.test_export_jobs import wait_job

pytestmark = [pytest.mark.slow]

HIERARCHY = {
    "levels": ["coarse", "fine"],
    "gated_inference": True,
    "curriculum": [
        {"level": "coarse", "epochs": 1, "lr": 0.003},
        {"level": "fine", "epochs": 2, "lr": 0.003},
    ],
    "freeze_early_layers": 1,
    "adapters": "film",
    "distill": {"feature_weight": 1.0, "kl_weight": 1.0},
}


def test_hierarchical_experiment_trains_evaluates_and_exports_in_workers(
    session: Session,
    engine: Engine,
    storage: Storage,
    client: TestClient,
    pool: PoolRunner,
    tmp_path: Path,
) -> None:
    project = make_project(session, name="Shapes")
    pid = project.id
    assert pid is not None
    write_hierarchical(tmp_path / "data", images=40, size=32)
    assert import_folder(session, engine, storage, pid, tmp_path / "data").status == "succeeded"
    split = client.post(
        f"/api/projects/{pid}/splits",
        json={"name": "main", "ratios": {"train": 0.6, "val": 0.2, "test": 0.2}},
    ).json()
    created = client.post(
        f"/api/projects/{pid}/experiments",
        json={
            "name": "staged",
            "split_id": split["id"],
            "model": "small_cnn",
            "image_size": 32,
            "batch_size": 8,
            "hierarchy": HIERARCHY,
        },
    )
    assert created.status_code == 201, created.text
    eid = created.json()["id"]
    base = f"/api/projects/{pid}/experiments/{eid}"
    job = client.post(f"{base}/train").json()["job"]
    wait_job(session, job["id"])
    experiment = client.get(base).json()
    assert experiment["status"] == "completed" and experiment["epochs_done"] == 3
    series = client.get(f"{base}/metrics").json()["series"]
    assert [p["value"] for p in series["val/stage"]] == [1.0, 2.0, 2.0]
    assert len(series["train/fine_loss"]) == 2 and len(series["train/coarse_loss"]) == 3
    # distillation starts with the second stage, from the model the first one left
    assert len(series["train/distill_kl_loss"]) == 2
    assert len(series["train/distill_feature_loss"]) == 2

    started = client.post(f"{base}/evaluation", json={"subsets": ["val", "test"]})
    assert started.status_code == 202, started.text
    wait_job(session, started.json()["job"]["id"])
    aggregate = client.get(f"{base}/evaluation").json()["aggregate"]
    for key in (
        "fine/accuracy",
        "coarse/accuracy",
        "hierarchical_accuracy",
        "fine/macro_f1",
        "coarse/macro_f1",
        "coarse/balanced_accuracy",
    ):
        assert 0.0 <= aggregate[key] <= 1.0
    assert aggregate["fine/accuracy"] == aggregate["accuracy"]
    assert aggregate["hierarchical_accuracy"] <= min(
        aggregate["fine/accuracy"], aggregate["coarse/accuracy"]
    )
    assert aggregate["violations"] == 0  # gated: the fine class always lies in the routed group
    assert aggregate["levels"]["coarse"]["labels"] == ["hollow", "solid"]
    fine = aggregate["levels"]["fine"]
    assert sum(map(sum, fine["matrix"])) == aggregate["samples"]

    exported = client.post(f"{base}/exports", json={"format": "onnx", "checkpoint": "best"})
    assert exported.status_code == 202, exported.text
    wait_job(session, exported.json()["job"]["id"])
    record = client.get(f"{base}/exports").json()["items"][0]
    assert record["status"] == "completed" and record["valid"] is True, record["validation"]


def test_hierarchical_segmentation_trains_evaluates_and_exports_in_workers(
    session: Session,
    engine: Engine,
    storage: Storage,
    client: TestClient,
    pool: PoolRunner,
    tmp_path: Path,
) -> None:
    """Flat fine inference this time (the API test exports a gated one): the violations are
    counted, and the exported fine logits pass parity."""
    project = make_project(session, name="Scenes", task_type="segmentation")
    pid = project.id
    assert pid is not None
    write_dataset("segmentation/hierarchy", tmp_path / "data", images=20, size=32)
    assert import_folder(session, engine, storage, pid, tmp_path / "data").status == "succeeded"
    split = client.post(
        f"/api/projects/{pid}/splits",
        json={"name": "main", "ratios": {"train": 0.6, "val": 0.2, "test": 0.2}},
    ).json()
    hierarchy = {**HIERARCHY, "levels": ["binary", "coarse", "fine"], "gated_inference": False}
    for part in ("freeze_early_layers", "adapters", "distill"):
        hierarchy.pop(part)
    created = client.post(
        f"/api/projects/{pid}/experiments",
        json={
            "name": "staged",
            "split_id": split["id"],
            "model": "unet_small",
            "decoder_channels": 4,
            "image_size": 32,
            "batch_size": 8,
            "hierarchy": hierarchy,
        },
    )
    assert created.status_code == 201, created.text
    base = f"/api/projects/{pid}/experiments/{created.json()['id']}"
    wait_job(session, client.post(f"{base}/train").json()["job"]["id"])
    assert client.get(base).json()["status"] == "completed"
    wait_job(
        session, client.post(f"{base}/evaluation", json={"subsets": ["test"]}).json()["job"]["id"]
    )
    aggregate = client.get(f"{base}/evaluation").json()["aggregate"]
    assert aggregate["gated_inference"] is False and aggregate["fine/miou"] == aggregate["miou"]
    assert isinstance(aggregate["violations"], int) and aggregate["violations"] >= 0
    assert aggregate["violations"] == aggregate["by_subset"]["test"]["violations"]
    assert 0.0 <= aggregate["binary/miou"] <= 1.0
    exported = client.post(f"{base}/exports", json={"format": "onnx", "checkpoint": "best"})
    assert exported.status_code == 202, exported.text
    wait_job(session, exported.json()["job"]["id"])
    record = client.get(f"{base}/exports").json()["items"][0]
    assert record["status"] == "completed" and record["valid"] is True, record["validation"]
