"""Task conformance: every trainable task type runs the whole workflow on its synthetic data,
through the same service and handler code the studio runs, with no task-specific test code.

import (real importer) → stratified split → tiny fit → evaluate (handler) → pages render →
ONNX export with parity (handler) → prediction envelope from the exported file.
A new task type (or a variant such as hierarchical classification) is covered as soon as it
registers a generator in benchmarks/synthetic."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from app.config import Settings
from app.models import (
    EvaluationMatch,
    EvaluationResult,
    Experiment,
    Export,
    ExportCreate,
    Job,
    Project,
    Split,
)
from app.models.evaluation import EvaluationStart
from app.services import evaluations as evaluation_service
from app.services import experiments as experiment_service
from app.services import exports as export_service
from app.services import jobs as job_service
from app.storage import Storage
from app.tasks import get_task, list_tasks
from benchmarks.synthetic import TINY_RECIPES, task_of, tasks, variants
from tests.support.tasks import imported_project
from workers.context import JobContext

pytestmark = [pytest.mark.slow]

TRAINABLE = [t.key for t in list_tasks() if t.supports("train")]
CASES = [key for key in variants() if task_of(key) in TRAINABLE]
IMAGES = 36
SIZE = 48


def test_every_trainable_task_has_a_synthetic_generator() -> None:
    assert set(TRAINABLE) <= set(tasks())


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(update={"import_roots": [tmp_path / "data"]})


def _run_job(session: Session, settings: Settings, engine: Engine, handler) -> dict:  # type: ignore[no-untyped-def]
    job = job_service.claim_next_job(session, queue="compute")
    assert job is not None
    result = handler(JobContext(job, settings, engine))
    session.expire_all()
    return result


@pytest.mark.parametrize("case", CASES)
def test_task_runs_the_whole_workflow(
    case: str,
    tmp_path: Path,
    session: Session,
    storage: Storage,
    settings: Settings,
    engine: Engine,
    client: TestClient,
) -> None:
    assert task_of(case) in tasks()  # loads the generators, which register their tiny recipes
    run_workflow(case, TINY_RECIPES[case], tmp_path, session, storage, settings, engine, client)


def run_workflow(
    case: str,
    recipe: dict[str, Any],
    tmp_path: Path,
    session: Session,
    storage: Storage,
    settings: Settings,
    engine: Engine,
    client: TestClient,
    imported: tuple[Project, Split] | None = None,
) -> Experiment:
    """The whole workflow of one case (a task, or `task/variant`) with one recipe (other
    suites run it with other models, or on a project they imported from
    `tmp_path/data/<task>`); returns the trained experiment."""
    from workers.handlers.evaluate import evaluate
    from workers.handlers.export import run_export_job
    from workers.handlers.train import run_experiment
    from workers.ml.predict import Predictor

    task = task_of(case)
    spec = get_task(task)
    data = tmp_path / "data" / case.replace("/", "-")
    project, split = imported or imported_project(
        session,
        engine,
        storage,
        settings,
        case,
        data,
        images=IMAGES,
        size=SIZE,
        name=f"Conformance {case}",
    )
    assert project.id is not None
    experiment = experiment_service.create_experiment(
        session, project.id, {"name": "tiny", "split_id": split.id, **recipe}
    )
    assert experiment.id is not None

    @contextmanager
    def open_session() -> Iterator[Session]:
        with Session(engine, expire_on_commit=False) as inner:
            yield inner

    trained = run_experiment(open_session, storage, experiment.id)
    assert trained["status"] == "completed"
    test_metrics = trained["test_metrics"]
    assert test_metrics and isinstance(test_metrics.get(spec.summary_metric), float)
    session.expire_all()

    # evaluate through the handler; rows, matches and the pages
    evaluation, _ = evaluation_service.start_evaluation(
        session,
        storage,
        project_id=project.id,
        experiment_id=experiment.id,
        data=EvaluationStart(subsets=["val", "test"]),
    )
    _run_job(session, settings, engine, evaluate)
    current = evaluation_service.get_evaluation(
        session, project_id=project.id, experiment_id=experiment.id
    )
    assert current.id == evaluation.id and current.status == "completed"
    assert isinstance(current.aggregate.get(spec.summary_metric), float)
    rows = session.exec(
        select(EvaluationResult).where(EvaluationResult.evaluation_id == evaluation.id)
    ).all()
    assert rows and all({"truth", "predicted"} <= set(r.prediction) for r in rows)
    assert all(r.error is not None for r in rows)
    # A verdict per image where the task filters by outcome; match rows where it has classes
    # to confuse (regression has neither: its confusion card shows the empty state).
    if "outcome" in spec.result_filters:
        assert all(r.correct is not None for r in rows)
    matches = session.exec(
        select(EvaluationMatch).where(EvaluationMatch.evaluation_id == evaluation.id)
    ).first()
    assert (matches is not None) == ("cell" in spec.result_filters)
    base = f"/projects/{project.id}/evaluation/{experiment.id}"
    assert client.get(f"/projects/{project.id}/evaluation").status_code == 200
    confusion = client.get(f"{base}/confusion")
    assert confusion.status_code == 200
    assert ('data-testid="cm-empty"' in confusion.text) == (matches is None)
    listing = client.get(f"{base}/results", params={"sort": "error"})
    assert listing.status_code == 200 and 'data-testid="eval-thumb"' in listing.text
    assert client.get(f"{base}/results/{rows[0].id}").status_code == 200

    # export with parity, then predict from the file alone
    _, export = export_service.submit_export(
        session=session, project_id=project.id, experiment_id=experiment.id, data=ExportCreate()
    )
    result = _run_job(session, settings, engine, run_export_job)
    row_export = session.get(Export, export.id)
    assert row_export is not None and row_export.status == "completed"
    assert result["valid"] is True, row_export.validation
    predictor = Predictor(storage.resolve(str(row_export.path)), threads=1)
    image = next(p for p in data.rglob("*.png") if "mask" not in p.parts)
    answer = predictor.predict([image, tmp_path / "missing.png"], options={})["results"]
    assert answer[0]["ok"] is True and answer[0]["task"] == task
    assert answer[0]["image"] == {"width": SIZE, "height": SIZE}
    assert answer[1]["ok"] is False and answer[1]["error"]["code"] == "bad_image"
    assert (
        session.exec(select(Job).where(Job.status == "queued", Job.queue == "compute")).first()
        is None
    )
    session.refresh(experiment)
    return experiment
