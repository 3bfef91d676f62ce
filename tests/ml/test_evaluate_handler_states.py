"""The `evaluate` handler's unhappy paths, in-process: a cancel before the model loads, and a
checkpoint that does not load. Both leave the evaluation in a state the page can show."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from app.config import Settings
from app.models.evaluation import EvaluationStart
from app.services import evaluations as service
from app.services import jobs as job_service
from app.storage import Storage
from tests.factories import make_image, make_split
from tests.support.evaluation import make_experiment
from workers.context import JobCancelled, JobContext
from workers.handlers.evaluate import evaluate


def _queued(session: Session, storage: Storage, project):  # type: ignore[no-untyped-def]
    images = [make_image(session, storage, project.id, labels=[n]) for n in "abab"]
    split = make_split(session, project.id, images, ratios=(0.5, 0.0, 0.5))
    experiment = make_experiment(session, storage, project.id, split)
    evaluation, job = service.start_evaluation(
        session, storage, project_id=project.id, experiment_id=experiment.id, data=EvaluationStart()
    )
    claimed = job_service.claim_next_job(session, queue="compute")
    assert claimed is not None and claimed.id == job.id
    return experiment, evaluation, claimed


def test_cancel_marks_the_evaluation_cancelled(
    session: Session, storage: Storage, settings: Settings, engine, project
) -> None:
    experiment, _evaluation, job = _queued(session, storage, project)
    job_service.cancel_job(session, job_id=job.id)  # sets cancel_requested on the running job
    ctx = JobContext(job, settings, engine)
    ctx.stop_requested.set()  # what the worker's SIGTERM handler does
    with pytest.raises(JobCancelled):
        evaluate(ctx)
    session.expire_all()
    assert service.find_evaluation(session, experiment_id=experiment.id).status == "cancelled"  # type: ignore[union-attr]


def test_unloadable_checkpoint_fails_with_the_reason(
    session: Session, storage: Storage, settings: Settings, engine, project
) -> None:
    experiment, _evaluation, job = _queued(session, storage, project)
    with pytest.raises(Exception):  # noqa: B017 (whatever torch raises for a non-checkpoint)
        evaluate(JobContext(job, settings, engine))
    session.expire_all()
    failed = service.find_evaluation(session, experiment_id=experiment.id)
    assert failed is not None and failed.status == "failed"
    assert failed.options["error"]  # shown on the page
    assert failed.aggregate == {}
