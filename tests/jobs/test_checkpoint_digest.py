"""Checkpoints carry the sha256 recorded when they were saved; evaluation, export and resume
refuse a file that no longer matches it (one appended byte used to go unnoticed)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.models import Job
from app.storage import Storage
from tests.factories import make_digits, make_split
from tests.helpers import wait_for
from tests.jobs.conftest import PoolRunner
from tests.support.training import train_tiny_experiment
from workers.ml.checkpoints import (
    CheckpointCorrupt,
    digest_path,
    load_checkpoint,
    load_for_inference,
    save_checkpoint,
)


def test_a_changed_checkpoint_is_refused_on_load(tmp_path: Path) -> None:
    path = tmp_path / "best.ckpt"
    save_checkpoint(path, state_dict={"w": torch.ones(3)}, provenance={"task": "x"})
    assert digest_path(path).read_text().split() == [
        __import__("hashlib").sha256(path.read_bytes()).hexdigest(),
        "best.ckpt",
    ]
    assert load_checkpoint(path)["state_dict"]["w"].sum() == 3
    with path.open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(CheckpointCorrupt, match="does not match the sha256"):
        load_checkpoint(path)
    with pytest.raises(CheckpointCorrupt):
        load_for_inference(path)


@pytest.mark.slow
def test_evaluation_and_export_jobs_refuse_a_changed_checkpoint(
    client: TestClient,
    session: Session,
    storage: Storage,
    project,
    pool: PoolRunner,  # type: ignore[no-untyped-def]
) -> None:
    images = make_digits(session, storage, project.id, per_class=4)
    split = make_split(session, project.id, images)
    experiment = train_tiny_experiment(session, storage, project.id, split.id, epochs=1)
    best = storage.experiment_dir(project.id, experiment.id) / "best.ckpt"
    assert digest_path(best).is_file()
    with best.open("ab") as handle:
        handle.write(b"\0")
    base = f"/api/projects/{project.id}/experiments/{experiment.id}"
    started = [
        client.post(f"{base}/evaluation", json={"subsets": ["test"], "checkpoint": "best"}),
        client.post(f"{base}/exports", json={"format": "onnx", "checkpoint": "best"}),
    ]
    for response in started:
        assert response.status_code == 202, response.text
        body = response.json()
        job_id = (body.get("job") or {}).get("id") or body.get("job_id")
        assert job_id, body

        def ended(job_id: int = job_id) -> Job | None:
            session.expire_all()
            job = session.get(Job, job_id)
            return job if job and job.status in {"succeeded", "failed"} else None

        job = wait_for(ended, timeout=180, interval=0.5, what=f"job {job_id}")
        assert job.status == "failed"
        assert "does not match the sha256" in (job.error or ""), job.error
