"""A multi-label export through the export handler itself (in this process, with a real
JobContext and database; the worker-process path is covered by test_export_jobs.py)."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.config import Settings
from app.models import Export, ExportCreate, Job
from app.services import exports as export_service
from app.storage import Storage
from tests.factories import make_image, make_project, make_split
from workers.context import JobContext

training = pytest.importorskip("tests.support.training")

pytestmark = [pytest.mark.slow]


def test_multi_label_onnx_export_records_thresholds_and_validates(
    session: Session, storage: Storage, settings: Settings, engine: Engine
) -> None:
    from workers.handlers.export import run_export_job

    project = make_project(session, name="Tags")
    rng = np.random.default_rng(0)
    images = []
    for i in range(30):
        pixels = (rng.random((24, 24, 3)) * 255).astype(np.uint8)
        labels = [
            name for name, on in (("red", i % 2), ("blue", i % 3 == 0), ("green", i % 5 < 2)) if on
        ]
        images.append(make_image(session, storage, project.id, pixels, labels=labels or ["green"]))
    split = make_split(session, project.id, images)
    experiment = training.train_tiny_experiment(
        session, storage, project.id, split.id, epochs=1, image_size=24, multi_label=True
    )
    job, export = export_service.submit_export(
        session=session, project_id=project.id, experiment_id=experiment.id, data=ExportCreate()
    )
    job.status = "running"
    session.add(job)
    session.commit()
    result = run_export_job(JobContext(session.get(Job, job.id), settings, engine))
    session.expire_all()
    row = session.get(Export, export.id)
    assert row is not None and row.status == "completed"
    assert result["valid"] is row.valid is True
    assert row.meta["multi_label"] is True
    thresholds = row.meta["thresholds"]
    assert isinstance(thresholds, list) and len(thresholds) == len(row.meta["classes"]) == 3
    assert all(0.0 < float(t) < 1.0 for t in thresholds)
    assert row.meta["postprocess"]["activation"] == "sigmoid"
    assert (
        row.validation["metric"] == "accuracy"
        and row.validation["labelled"] == row.validation["samples"]
    )
    assert row.validation["max_abs_diff"] <= 1e-4
