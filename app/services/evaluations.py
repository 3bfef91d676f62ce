"""Evaluations: one per experiment; a checkpoint run over subsets of the experiment's split.

The web process only validates, queues the `evaluate` job and reads results; the worker
handler (workers/handlers/evaluate.py) runs the model and calls `save_results` here. An
evaluation's status follows its job: if the job ends without the handler recording an
outcome (crash, cancel, shutdown), reading the evaluation reports the job's end state.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from app.db import utcnow
from app.errors import Conflict, Invalid, StudioError, not_found
from app.models import (
    TERMINAL_STATUSES,
    Annotation,
    Evaluation,
    EvaluationResult,
    Experiment,
    Image,
    Job,
    JobQueue,
    LabelClass,
    Project,
    SplitMember,
)
from app.models.evaluation import (
    CheckpointRead,
    EvaluationRead,
    EvaluationResultRead,
    EvaluationStart,
)
from app.services import jobs as job_service
from app.storage import Storage
from app.tasks import enable_features, get_task

enable_features("classification", "evaluate")

ACTIVE_STATUSES = ("queued", "running")
EXPERIMENT_BUSY = ("queued", "running", "stopping")
CHECKPOINT_ORDER = ("best", "last")
RESULT_SORTS = ("confidence", "-confidence", "loss", "-loss", "image")


# --- lookups ---------------------------------------------------------------------------------


def get_experiment(session: Session, *, project_id: int, experiment_id: int) -> Experiment:
    experiment = session.get(Experiment, experiment_id)
    if experiment is None or experiment.project_id != project_id:
        raise not_found("experiment", experiment_id)
    return experiment


def find_evaluation(session: Session, *, experiment_id: int) -> Evaluation | None:
    return session.exec(select(Evaluation).where(Evaluation.experiment_id == experiment_id)).first()


def get_evaluation(session: Session, *, project_id: int, experiment_id: int) -> Evaluation:
    get_experiment(session, project_id=project_id, experiment_id=experiment_id)
    evaluation = find_evaluation(session, experiment_id=experiment_id)
    if evaluation is None:
        raise NotFoundEvaluation(experiment_id)
    return sync_status(session, evaluation)


class NotFoundEvaluation(StudioError):
    status = 404
    code = "evaluation_not_found"

    def __init__(self, experiment_id: int) -> None:
        super().__init__(
            f"Experiment {experiment_id} has not been evaluated; POST to its /evaluation "
            "to start one.",
            details={"experiment_id": experiment_id},
        )


def sync_status(session: Session, evaluation: Evaluation) -> Evaluation:
    """Carry a job's end state over to an evaluation its handler could not update."""
    if evaluation.status not in ACTIVE_STATUSES or evaluation.job_id is None:
        return evaluation
    job = session.get(Job, evaluation.job_id)
    if job is not None and job.status in TERMINAL_STATUSES:
        session.refresh(evaluation)
        if evaluation.status in ACTIVE_STATUSES:
            evaluation.status = "completed" if job.status == "succeeded" else job.status
            evaluation.finished_at = job.finished_at or utcnow()
            session.add(evaluation)
            session.commit()
    return evaluation


def list_checkpoints(storage: Storage, experiment: Experiment) -> list[CheckpointRead]:
    """The experiment's checkpoints whose files exist, best first."""
    found: list[CheckpointRead] = []
    entries = dict(experiment.checkpoints or {})
    names = [n for n in CHECKPOINT_ORDER if n in entries] + sorted(
        n for n in entries if n not in CHECKPOINT_ORDER
    )
    for name in names:
        info = entries[name]
        if not isinstance(info, dict) or not info.get("path"):
            continue
        try:
            path = storage.resolve(str(info["path"]))
        except StudioError:
            continue
        if not path.is_file():
            continue
        found.append(
            CheckpointRead(
                name=name,
                path=str(info["path"]),
                epoch=info.get("epoch"),
                metric=info.get("metric"),
                saved_at=info.get("saved_at"),
                bytes=path.stat().st_size,
            )
        )
    return found


def split_subset_counts(session: Session, split_id: int) -> dict[str, int]:
    rows = session.exec(
        select(SplitMember.subset, func.count())
        .where(SplitMember.split_id == split_id)
        .group_by(col(SplitMember.subset))
    ).all()
    return {subset: int(n) for subset, n in rows}


def evaluation_samples(
    session: Session, storage: Storage, *, split_id: int, subsets: Iterable[str]
) -> list[dict[str, Any]]:
    """The images to evaluate: id, absolute path, subset and label class names, by subset and id.

    Reads SplitMember directly; when app.services.splits.subset_image_ids lands this is the
    one function to switch over.
    """
    wanted = list(subsets)
    members = session.exec(
        select(SplitMember.subset, Image.id, Image.stored_path)
        .join(Image, col(Image.id) == col(SplitMember.image_id))
        .where(SplitMember.split_id == split_id, col(SplitMember.subset).in_(wanted))
        .order_by(col(Image.id))
    ).all()
    labels: dict[int, list[str]] = {}
    ids = [image_id for _, image_id, _ in members]
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for image_id, name in session.exec(
            select(Annotation.image_id, LabelClass.name)
            .join(LabelClass, col(LabelClass.id) == col(Annotation.class_id))
            .where(col(Annotation.image_id).in_(chunk), Annotation.kind == "label")
            .order_by(col(Annotation.id))
        ).all():
            labels.setdefault(image_id, []).append(name)
    order = {s: i for i, s in enumerate(wanted)}
    samples: list[dict[str, Any]] = [
        {
            "image_id": image_id,
            "path": str(storage.resolve(stored_path)),
            "subset": subset,
            "labels": labels.get(image_id, []),
        }
        for subset, image_id, stored_path in members
        if image_id is not None
    ]
    samples.sort(key=lambda s: (order[s["subset"]], s["image_id"]))
    return samples


# --- commands --------------------------------------------------------------------------------


def start_evaluation(
    session: Session,
    storage: Storage,
    *,
    project_id: int,
    experiment_id: int,
    data: EvaluationStart,
) -> tuple[Evaluation, Job]:
    """Queue an evaluation; a finished earlier one of the same experiment is replaced."""
    project = session.get(Project, project_id)
    if project is None:
        raise not_found("project", project_id)
    if not get_task(project.task_type).supports("evaluate"):
        raise Conflict(
            f"Evaluation is not available for {project.task_type} projects in this build.",
            code="feature_unavailable",
            details={"task_type": project.task_type},
        )
    experiment = get_experiment(session, project_id=project_id, experiment_id=experiment_id)
    if experiment.status in EXPERIMENT_BUSY:
        raise Conflict(
            f"Experiment {experiment_id} is {experiment.status}; evaluate it once training ends.",
            code="experiment_running",
            details={"status": experiment.status},
        )
    checkpoints = {c.name: c for c in list_checkpoints(storage, experiment)}
    if not checkpoints:
        raise Conflict(
            f"Experiment {experiment_id} has no checkpoint file; train it first.",
            code="no_checkpoint",
        )
    if data.checkpoint not in checkpoints:
        raise Invalid(
            f"checkpoint={data.checkpoint!r} does not exist for this experiment; use one of: "
            f"{', '.join(checkpoints)}.",
            code="unknown_checkpoint",
            details={"valid": list(checkpoints)},
        )
    if experiment.split_id is None:
        raise Conflict(f"Experiment {experiment_id} has no split to evaluate on.", code="no_split")
    counts = split_subset_counts(session, experiment.split_id)
    empty = [s for s in data.subsets if not counts.get(s)]
    if empty:
        raise Invalid(
            f"The split has no images in subset(s) {', '.join(empty)}; choose among "
            f"{', '.join(s for s in counts if counts[s]) or 'none'}.",
            code="empty_subset",
            details={"empty": empty, "counts": counts},
        )
    existing = find_evaluation(session, experiment_id=experiment_id)
    if existing is not None:
        sync_status(session, existing)
        if existing.status in ACTIVE_STATUSES:
            raise Conflict(
                f"Experiment {experiment_id} is being evaluated (job {existing.job_id}); wait "
                "for it or reset the evaluation.",
                code="evaluation_running",
                details={"job_id": existing.job_id},
            )
        _delete_evaluation(session, storage, existing, project_id)
    evaluation = Evaluation(
        experiment_id=experiment_id,
        checkpoint=data.checkpoint,
        subsets=list(data.subsets),
        options={
            "batch_size": data.batch_size,
            "device": data.device,
            "tta": list(data.tta),
            "checkpoint_epoch": checkpoints[data.checkpoint].epoch,
            "checkpoint_saved_at": checkpoints[data.checkpoint].saved_at,
        },
        status="queued",
    )
    session.add(evaluation)
    session.flush()
    job = job_service.submit_job_for(
        session,
        evaluation,
        kind="evaluate",
        queue=JobQueue.compute,
        project_id=project_id,
        target=f"experiment:{experiment_id}",
        title=f"Evaluate {experiment.name} ({data.checkpoint}, {'+'.join(data.subsets)})",
        params={"evaluation_id": evaluation.id, "experiment_id": experiment_id},
    )
    return evaluation, job


def _delete_evaluation(
    session: Session, storage: Storage, evaluation: Evaluation, project_id: int
) -> None:
    session.execute(
        delete(EvaluationResult).where(col(EvaluationResult.evaluation_id) == evaluation.id)
    )
    session.delete(evaluation)
    session.commit()
    storage.remove_tree(evaluation_dir(storage, project_id, evaluation.experiment_id))


def evaluation_dir(storage: Storage, project_id: int, experiment_id: int) -> Path:
    return storage.experiment_dir(project_id, experiment_id) / "evaluation"


def reset_evaluation(
    session: Session, storage: Storage, *, project_id: int, experiment_id: int
) -> None:
    """Delete the evaluation, its results and files now; a running job is cancelled."""
    evaluation = get_evaluation(session, project_id=project_id, experiment_id=experiment_id)
    if evaluation.status in ACTIVE_STATUSES and evaluation.job_id is not None:
        job = session.get(Job, evaluation.job_id)
        if job is not None and job.status not in TERMINAL_STATUSES:
            with contextlib.suppress(Conflict):  # it ended meanwhile
                job_service.cancel_job(session, job_id=evaluation.job_id)
    _delete_evaluation(session, storage, evaluation, project_id)


# --- used by the worker handler --------------------------------------------------------------


def mark_running(session: Session, evaluation_id: int) -> Evaluation:
    evaluation = session.get(Evaluation, evaluation_id)
    if evaluation is None:
        raise StudioError(
            f"Evaluation {evaluation_id} was reset before it started.", code="evaluation_reset"
        )
    evaluation.status = "running"
    session.add(evaluation)
    session.commit()
    return evaluation


def mark_ended(session: Session, evaluation_id: int, status: str, error: str = "") -> None:
    evaluation = session.get(Evaluation, evaluation_id)
    if evaluation is None:
        return
    evaluation.status = status
    evaluation.finished_at = utcnow()
    if error:
        evaluation.options = {**evaluation.options, "error": error[:2000]}
    session.add(evaluation)
    session.commit()


def save_results(
    session: Session,
    evaluation_id: int,
    *,
    rows: list[dict[str, Any]],
    aggregate: dict[str, Any],
    audit: dict[str, Any],
    options: dict[str, Any] | None = None,
) -> Evaluation:
    """Store per-image rows and the aggregate in one transaction; the evaluation completes."""
    evaluation = session.get(Evaluation, evaluation_id)
    if evaluation is None:
        raise StudioError(
            f"Evaluation {evaluation_id} was reset while it ran; nothing was saved.",
            code="evaluation_reset",
        )
    session.execute(
        delete(EvaluationResult).where(col(EvaluationResult.evaluation_id) == evaluation_id)
    )
    session.add_all(EvaluationResult(evaluation_id=evaluation_id, **row) for row in rows)
    evaluation.aggregate = aggregate
    evaluation.audit = audit
    evaluation.options = {**evaluation.options, **(options or {})}
    evaluation.status = "completed"
    evaluation.finished_at = utcnow()
    session.add(evaluation)
    session.commit()
    session.refresh(evaluation)
    return evaluation


# --- reads -----------------------------------------------------------------------------------


def evaluation_job(session: Session, evaluation: Evaluation) -> Job | None:
    return session.get(Job, evaluation.job_id) if evaluation.job_id is not None else None


def is_stale(session: Session, evaluation: Evaluation) -> bool:
    """True when the evaluated checkpoint was overwritten since (the experiment trained again)."""
    experiment = session.get(Experiment, evaluation.experiment_id)
    if experiment is None:
        return False
    current = (experiment.checkpoints or {}).get(evaluation.checkpoint) or {}
    recorded = evaluation.options.get("checkpoint_saved_at")
    return bool(recorded) and current.get("saved_at") != recorded


def read_evaluation(session: Session, evaluation: Evaluation) -> EvaluationRead:
    read = EvaluationRead.model_validate(evaluation, from_attributes=True)
    job = evaluation_job(session, evaluation)
    read.job = job_service.read_job(job) if job is not None else None
    read.stale = is_stale(session, evaluation)
    return read


def list_results(
    session: Session,
    evaluation: Evaluation,
    *,
    project_id: int,
    subset: str | None = None,
    outcome: str | None = None,
    true_class: int | None = None,
    predicted_class: int | None = None,
    sort: str = "confidence",
    page: int = 1,
    page_size: int = 48,
) -> tuple[list[EvaluationResultRead], int]:
    """Per-image results. `outcome` is correct | incorrect; classes are output indices.

    Multi-label results have no single class per image, so their class filters ("has this
    true label" / "predicted this label") run over the rows' label sets in Python.
    """
    if sort not in RESULT_SORTS:
        raise Invalid(
            f"sort={sort!r} is not a sort order; use one of: {', '.join(RESULT_SORTS)}.",
            code="invalid_sort",
            details={"valid": list(RESULT_SORTS)},
        )
    if outcome not in (None, "", "correct", "incorrect"):
        raise Invalid(
            f"outcome={outcome!r} is not valid; use correct or incorrect.", code="invalid_outcome"
        )
    multilabel = (evaluation.aggregate or {}).get("task") == "multilabel"
    query = (
        select(EvaluationResult, Image.original_name)
        .join(Image, col(Image.id) == col(EvaluationResult.image_id))
        .where(EvaluationResult.evaluation_id == evaluation.id)
    )
    if subset:
        query = query.where(EvaluationResult.subset == subset)
    if outcome:
        query = query.where(EvaluationResult.correct == (outcome == "correct"))
    if not multilabel:
        if true_class is not None:
            query = query.where(EvaluationResult.true_class == true_class)
        if predicted_class is not None:
            query = query.where(EvaluationResult.predicted_class == predicted_class)
    key = {
        "confidence": (col(EvaluationResult.score).desc(), col(EvaluationResult.id)),
        "-confidence": (col(EvaluationResult.score).asc(), col(EvaluationResult.id)),
        "loss": (col(EvaluationResult.loss).desc(), col(EvaluationResult.id)),
        "-loss": (col(EvaluationResult.loss).asc(), col(EvaluationResult.id)),
        "image": (col(EvaluationResult.image_id), col(EvaluationResult.id)),
    }[sort]
    query = query.order_by(*key)
    if multilabel and (true_class is not None or predicted_class is not None):
        rows = [
            row
            for row in session.exec(query).all()
            if (true_class is None or true_class in row[0].prediction.get("targets", []))
            and (predicted_class is None or predicted_class in row[0].prediction.get("labels", []))
        ]
        total = len(rows)
        rows = rows[(page - 1) * page_size : page * page_size]
    else:
        count = select(func.count()).select_from(query.order_by(None).subquery())
        total = int(session.exec(count).one())
        rows = list(session.exec(query.offset((page - 1) * page_size).limit(page_size)).all())
    items = [
        EvaluationResultRead(
            id=result.id,  # type: ignore[arg-type]
            image_id=result.image_id,
            original_name=name,
            subset=result.subset,
            prediction=result.prediction,
            score=result.score,
            loss=result.loss,
            correct=result.correct,
            true_class=result.true_class,
            predicted_class=result.predicted_class,
            thumbnail_url=f"/api/projects/{project_id}/images/{result.image_id}/thumbnail",
            file_url=f"/api/projects/{project_id}/images/{result.image_id}/file",
        )
        for result, name in rows
    ]
    return items, total


def get_result(
    session: Session, evaluation: Evaluation, *, project_id: int, result_id: int
) -> EvaluationResultRead:
    result = session.get(EvaluationResult, result_id)
    if result is None or result.evaluation_id != evaluation.id:
        raise not_found("result", result_id)
    image = session.get(Image, result.image_id)
    return EvaluationResultRead(
        id=result_id,
        image_id=result.image_id,
        original_name=image.original_name if image else "",
        subset=result.subset,
        prediction=result.prediction,
        score=result.score,
        loss=result.loss,
        correct=result.correct,
        true_class=result.true_class,
        predicted_class=result.predicted_class,
        thumbnail_url=f"/api/projects/{project_id}/images/{result.image_id}/thumbnail",
        file_url=f"/api/projects/{project_id}/images/{result.image_id}/file",
    )


def completed_experiments(session: Session, *, project_id: int) -> list[Experiment]:
    """Experiments with something to evaluate (training ended), newest first."""
    return list(
        session.exec(
            select(Experiment)
            .where(
                Experiment.project_id == project_id,
                col(Experiment.status).in_(["completed", "stopped", "interrupted", "failed"]),
            )
            .order_by(col(Experiment.id).desc())
        )
    )
