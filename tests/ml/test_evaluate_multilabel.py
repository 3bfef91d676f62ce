"""Multi-label evaluation through the real `evaluate` handler, run in-process on a JobContext:
subset accuracy equals training's, thresholds reported, label-set filters on the results."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from app.config import Settings
from app.models import Annotation, LabelClass
from app.models.evaluation import EvaluationStart
from app.services import annotations
from app.services import evaluation_results as results
from app.services import evaluations as service
from app.services import jobs as job_service
from app.storage import Storage
from tests.factories import make_class, make_digits, make_split
from tests.support.training import train_tiny_experiment
from workers.context import JobContext
from workers.handlers.evaluate import evaluate
from workers.ml.checkpoints import load_for_inference

pytestmark = pytest.mark.slow


def test_multilabel_evaluation_in_process(
    session: Session, storage: Storage, settings: Settings, engine, project
) -> None:
    images = make_digits(session, storage, project.id, per_class=6)
    parity: dict[int, str] = {}  # a second label per image: the digit's parity
    for annotation, name in session.exec(
        select(Annotation, LabelClass.name).join(LabelClass, LabelClass.id == Annotation.class_id)
    ).all():
        parity[annotation.image_id] = "even" if int(name) % 2 == 0 else "odd"
    for image_id, name in parity.items():
        cls = make_class(session, project.id, name)
        session.add(
            Annotation(project_id=project.id, image_id=image_id, class_id=cls.id, kind="label")
        )
    session.commit()
    split = make_split(session, project.id, images)
    experiment = train_tiny_experiment(
        session, storage, project.id, split.id, epochs=2, multi_label=True
    )
    recorded = experiment.provenance["test_metrics"]

    evaluation, job = service.start_evaluation(
        session,
        storage,
        project_id=project.id,
        experiment_id=experiment.id,
        data=EvaluationStart(subsets=["test"], batch_size=8),
    )
    claimed = job_service.claim_next_job(session, queue="compute")
    assert claimed is not None and claimed.id == job.id
    result = evaluate(JobContext(claimed, settings, engine))
    assert result["evaluation_id"] == evaluation.id
    session.expire_all()  # the handler wrote through its own sessions
    evaluation = service.get_evaluation(session, project_id=project.id, experiment_id=experiment.id)
    aggregate = evaluation.aggregate
    assert aggregate["task"] == "multilabel"
    assert aggregate["subset_accuracy"] == recorded["accuracy"]  # exact
    model = load_for_inference(storage.resolve(experiment.checkpoints["best"]["path"]))
    assert model.info["thresholds"] is not None  # tuned at training, used as recorded
    assert aggregate["thresholds"] == pytest.approx(model.info["thresholds"])
    assert 0.0 <= aggregate["hamming_loss"] <= 1.0 and "confusion_matrix" not in aggregate

    classes = aggregate["classes"]
    even = classes.index("even")
    items, total = results.list_results(
        session, evaluation, project_id=project.id, true_class=even, page_size=500
    )
    assert total == sum(1 for i in parity.values() if i == "even") - sum(
        1
        for r in annotations.subset_samples(
            session, storage, split_id=split.id, subsets=["train", "val"]
        )
        if any(a["class_name"] == "even" for a in r["annotations"])
    )
    assert all(even in [t["index"] for t in item.prediction["truth"]] for item in items)
    predicted, _ = results.list_results(
        session, evaluation, project_id=project.id, predicted_class=even, page_size=500
    )
    assert all(even in [p["index"] for p in item.prediction["predicted"]] for item in predicted)
