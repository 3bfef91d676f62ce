"""The `evaluate` job end to end in a real worker process, on a really trained digits model."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as sk
from sqlmodel import Session, select

from app.models import EvaluationMatch, EvaluationResult, Job
from app.models.evaluation import EvaluationStart
from app.services import evaluations as service
from app.services.events import list_events
from app.storage import Storage
from tests.factories import make_digits, make_split
from tests.helpers import wait_for
from tests.jobs.conftest import PoolRunner
from tests.support.training import train_tiny_experiment

pytestmark = [pytest.mark.slow]


def _wait_done(session: Session, job_id: int, pool: PoolRunner) -> Job:
    def done() -> Job | None:
        session.expire_all()
        job = session.get(Job, job_id)
        return job if job and job.status in ("succeeded", "failed", "cancelled") else None

    try:
        return wait_for(done, timeout=240, interval=0.5, what=f"evaluate job {job_id}")
    except AssertionError:
        print(pool.log.read_text()[-4000:])
        raise


def test_evaluate_job_matches_training_and_stores_everything(
    session: Session, storage: Storage, project, pool: PoolRunner
) -> None:
    images = make_digits(session, storage, project.id, per_class=8)
    split = make_split(session, project.id, images)
    experiment = train_tiny_experiment(session, storage, project.id, split.id, epochs=2)
    recorded = experiment.provenance["test_metrics"]

    evaluation, job = service.start_evaluation(
        session,
        storage,
        project_id=project.id,
        experiment_id=experiment.id,
        data=EvaluationStart(checkpoint="best", subsets=["test", "train", "val"], batch_size=16),
    )
    finished = _wait_done(session, job.id, pool)
    assert finished.status == "succeeded", finished.error
    progress = [e.payload for e in list_events(session, job_id=job.id) if e.type == "progress"]
    assert progress and progress[-1]["done"] == progress[-1]["total"] == len(images)

    evaluation = service.get_evaluation(session, project_id=project.id, experiment_id=experiment.id)
    assert evaluation.status == "completed"
    aggregate = evaluation.aggregate
    # the acceptance check: same checkpoint, same test images -> the same accuracy, exactly
    assert aggregate["by_subset"]["test"]["accuracy"] == recorded["accuracy"]
    assert aggregate["samples"] == len(images)
    assert aggregate["tta"]["enabled"] is False and aggregate["checkpoint"] == "best"

    rows = session.exec(
        select(EvaluationResult).where(EvaluationResult.evaluation_id == evaluation.id)
    ).all()
    assert len(rows) == len(images)
    test_rows = [r for r in rows if r.subset == "test"]
    truth = [r.prediction["truth"][0]["index"] for r in test_rows]
    preds = [r.prediction["predicted"][0]["index"] for r in test_rows]
    matches = session.exec(
        select(EvaluationMatch).where(
            EvaluationMatch.evaluation_id == evaluation.id, EvaluationMatch.subset == "test"
        )
    ).all()
    by_image = {m.image_id: (m.true_class, m.predicted_class) for m in matches}
    assert [by_image[r.image_id] for r in test_rows] == list(zip(truth, preds, strict=True))
    assert sk.accuracy_score(truth, preds) == recorded["accuracy"]
    assert (
        aggregate["by_subset"]["test"]["confusion_matrix"]
        == sk.confusion_matrix(truth, preds, labels=list(range(10))).tolist()
    )
    # full-precision scores live in the evaluation's scores.npz (rows keep 6 decimals)
    folder = service.evaluation_dir(storage, project.id, experiment.id, evaluation.id)
    stored = np.load(folder / "scores.npz")
    probs = {int(i): row for i, row in zip(stored["image_ids"], stored["probs"], strict=True)}
    scores = np.array([probs[r.image_id] for r in test_rows])
    assert np.allclose(scores, [r.prediction["scores"] for r in test_rows], atol=1e-6)
    truth_arr = np.array(truth)
    occurring = [c for c in range(10) if 0 < (truth_arr == c).sum() < len(truth_arr)]
    expected_auc = np.mean([sk.roc_auc_score(truth_arr == c, scores[:, c]) for c in occurring])
    assert aggregate["by_subset"]["test"]["roc_auc_macro"] == pytest.approx(expected_auc)

    audit = evaluation.audit
    assert audit["checks"]["fingerprint"]["status"] == "ok"
    assert audit["checks"]["exact_duplicates"]["count"] == 0
    assert audit["checks"]["metric_gap"]["source"] == "this evaluation"
    assert (folder / "scores.npz").is_file() and (folder / "aggregate.json").is_file()

    # reset deletes rows and files at once
    service.reset_evaluation(session, storage, project_id=project.id, experiment_id=experiment.id)
    assert session.exec(select(EvaluationResult)).all() == []
    assert not folder.exists()
