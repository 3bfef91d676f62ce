"""Evaluations: a checkpoint run over subsets of the experiment's split, for any task.

The web process only validates, queues the `evaluate` job and reads results; the worker
handler (workers/handlers/evaluate.py) runs the task's evaluation and calls `save_results`
here. An evaluation's status follows its job: if the job ends without the handler recording
an outcome (crash, cancel, shutdown), reading the evaluation reports the job's end state.

An experiment shows its *current* evaluation: the newest completed one, or the newest at all
when none completed. A new run never deletes the current one; only when the new one completes
are the older evaluations (rows, matches, files) removed. A newer run that failed or is still
going shows beside the current one as its `attempt`. Per-image reads live in
app/services/evaluation_results.py.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from app.db import utcnow
from app.errors import Conflict, Invalid, StudioError, not_found
from app.models import (
    TERMINAL_STATUSES,
    Evaluation,
    EvaluationMatch,
    EvaluationResult,
    Experiment,
    Job,
    JobQueue,
    Project,
    SplitMember,
)
from app.models.evaluation import (
    CheckpointRead,
    EvaluationRead,
    EvaluationStart,
)
from app.services import jobs as job_service
from app.services.hardware import check_device
from app.storage import Storage
from app.tasks import get_task

ACTIVE_STATUSES = ("queued", "running")
EXPERIMENT_BUSY = ("queued", "running", "stopping")
CHECKPOINT_ORDER = ("best", "last")


# --- lookups ---------------------------------------------------------------------------------


def get_experiment(session: Session, *, project_id: int, experiment_id: int) -> Experiment:
    experiment = session.get(Experiment, experiment_id)
    if experiment is None or experiment.project_id != project_id:
        raise not_found("experiment", experiment_id)
    return experiment


def newest_evaluation(session: Session, *, experiment_id: int) -> Evaluation | None:
    return session.exec(
        select(Evaluation)
        .where(Evaluation.experiment_id == experiment_id)
        .order_by(col(Evaluation.id).desc())
    ).first()


def find_evaluation(session: Session, *, experiment_id: int) -> Evaluation | None:
    """The current evaluation: the newest completed one, else the newest (queued, running,
    failed...), else None. Active rows are synced with their jobs first."""
    newest = newest_evaluation(session, experiment_id=experiment_id)
    if newest is None:
        return None
    sync_status(session, newest)
    if newest.status == "completed":
        return newest
    completed = session.exec(
        select(Evaluation)
        .where(Evaluation.experiment_id == experiment_id, Evaluation.status == "completed")
        .order_by(col(Evaluation.id).desc())
    ).first()
    return completed or newest


def get_evaluation(session: Session, *, project_id: int, experiment_id: int) -> Evaluation:
    get_experiment(session, project_id=project_id, experiment_id=experiment_id)
    evaluation = find_evaluation(session, experiment_id=experiment_id)
    if evaluation is None:
        raise NotFoundEvaluation(experiment_id)
    return evaluation


def attempt_of(session: Session, evaluation: Evaluation) -> Evaluation | None:
    """A newer run of the same experiment than `evaluation` (running, failed, cancelled)."""
    newest = newest_evaluation(session, experiment_id=evaluation.experiment_id)
    if newest is None or newest.id == evaluation.id:
        return None
    sync_status(session, newest)
    return newest


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


# --- commands --------------------------------------------------------------------------------


def start_evaluation(
    session: Session,
    storage: Storage,
    *,
    project_id: int,
    experiment_id: int,
    data: EvaluationStart,
) -> tuple[Evaluation, Job]:
    """Queue an evaluation. The current one stays until this one completes (then it goes)."""
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
    check_device(storage, data.device)
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
    existing = newest_evaluation(session, experiment_id=experiment_id)
    if existing is not None:
        sync_status(session, existing)
        if existing.status in ACTIVE_STATUSES:
            raise Conflict(
                f"Experiment {experiment_id} is being evaluated (job {existing.job_id}); wait "
                "for it or reset the evaluation.",
                code="evaluation_running",
                details={"job_id": existing.job_id},
            )
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


def _delete_evaluations(
    session: Session, storage: Storage, evaluations: list[Evaluation], project_id: int
) -> None:
    """Rows, match rows and files of these evaluations; the caller commits."""
    ids = [e.id for e in evaluations]
    if not ids:
        return
    session.execute(delete(EvaluationMatch).where(col(EvaluationMatch.evaluation_id).in_(ids)))
    session.execute(delete(EvaluationResult).where(col(EvaluationResult.evaluation_id).in_(ids)))
    for evaluation in evaluations:
        session.delete(evaluation)
    session.flush()
    for evaluation in evaluations:
        assert evaluation.id is not None
        storage.remove_tree(
            evaluation_dir(storage, project_id, evaluation.experiment_id, evaluation.id)
        )


def evaluation_dir(
    storage: Storage, project_id: int, experiment_id: int, evaluation_id: int
) -> Path:
    """An evaluation's artefacts (scores, masks...), its own folder so a new run never
    overwrites the files of the evaluation still shown."""
    return storage.experiment_dir(project_id, experiment_id) / "evaluations" / str(evaluation_id)


def reset_evaluation(
    session: Session, storage: Storage, *, project_id: int, experiment_id: int
) -> None:
    """Delete every evaluation of the experiment, results and files now; a running job is
    cancelled."""
    get_evaluation(session, project_id=project_id, experiment_id=experiment_id)
    rows = list(session.exec(select(Evaluation).where(Evaluation.experiment_id == experiment_id)))
    for evaluation in rows:
        if evaluation.status in ACTIVE_STATUSES and evaluation.job_id is not None:
            job = session.get(Job, evaluation.job_id)
            if job is not None and job.status not in TERMINAL_STATUSES:
                with contextlib.suppress(Conflict):  # it ended meanwhile
                    job_service.cancel_job(session, job_id=evaluation.job_id)
    _delete_evaluations(session, storage, rows, project_id)
    session.commit()


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
    storage: Storage,
    evaluation_id: int,
    *,
    rows: list[dict[str, Any]],
    matches: list[dict[str, Any]],
    aggregate: dict[str, Any],
    audit: dict[str, Any],
    options: dict[str, Any] | None = None,
) -> Evaluation:
    """Store per-image rows, match rows and the aggregate in one transaction; the evaluation
    completes and the experiment's older evaluations (and their files) go."""
    evaluation = session.get(Evaluation, evaluation_id)
    if evaluation is None:
        raise StudioError(
            f"Evaluation {evaluation_id} was reset while it ran; nothing was saved.",
            code="evaluation_reset",
        )
    session.execute(
        delete(EvaluationMatch).where(col(EvaluationMatch.evaluation_id) == evaluation_id)
    )
    session.execute(
        delete(EvaluationResult).where(col(EvaluationResult.evaluation_id) == evaluation_id)
    )
    columns = set(EvaluationResult.model_fields) - {"id", "evaluation_id"}
    session.add_all(
        EvaluationResult(
            evaluation_id=evaluation_id, **{k: v for k, v in row.items() if k in columns}
        )
        for row in rows
    )
    session.add_all(EvaluationMatch(evaluation_id=evaluation_id, **match) for match in matches)
    older = list(
        session.exec(
            select(Evaluation).where(
                Evaluation.experiment_id == evaluation.experiment_id,
                col(Evaluation.id) < evaluation_id,
            )
        )
    )
    experiment = session.get(Experiment, evaluation.experiment_id)
    if experiment is not None:
        _delete_evaluations(session, storage, older, experiment.project_id)
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
    attempt = attempt_of(session, evaluation)
    if attempt is not None:
        attempt_job = evaluation_job(session, attempt)
        read.attempt = {
            "id": attempt.id,
            "status": attempt.status,
            "error": attempt.options.get("error", ""),
            "checkpoint": attempt.checkpoint,
            "subsets": attempt.subsets,
            "job_id": attempt.job_id,
            "job": job_service.read_job(attempt_job).model_dump(mode="json")
            if attempt_job
            else None,
        }
    return read


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
