"""Experiments: a training recipe on a split, its run state, checkpoints and curves.

Status lifecycle (experiment.status):
  created     → queued        train asked; a "train" job waits in the compute lane
  queued      → running       a worker picked the job up
  running     → stopping      stop asked; the worker finishes its step, saves, then ...
  stopping    → stopped       ... records stopped (resumable from last.ckpt)
  running     → completed     all epochs (or early stopping) done, test subset evaluated
  running     → failed        the handler raised
  running     → interrupted   the job was interrupted (worker killed, studio restarted);
                              derived from the job when the experiment is read
  stopped | interrupted | completed → queued   resume from last.ckpt (epochs may be raised)
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from app.catalog import get_model, list_models
from app.catalog.weights import WeightLocations, require_weights
from app.db import utcnow
from app.errors import Conflict, Invalid, not_found
from app.models import (
    Experiment,
    Image,
    Job,
    JobQueue,
    JobStatus,
    LabelClass,
    MetricPoint,
    Project,
    Split,
)
from app.services import jobs as job_service
from app.services import split_strata
from app.storage import Storage
from app.tasks import TaskSpec, get_task, list_tasks
from app.tasks.hyperparams import validate_config
from app.validation import api_sentence, describe

ACTIVE = ("queued", "running", "stopping")
# Provenance set before a run that the run's own provenance must not replace: the user's
# description, and what a domain-generalisation report asked of its experiments.
KEPT_PROVENANCE = ("description", "dg_report_id", "evaluate_val")
RESUMABLE = ("stopped", "interrupted", "completed", "failed")
ExperimentName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)
]


class ExperimentCreate(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: ExperimentName | None = None  # default: "<model>-<n>", unique in the project
    split_id: int
    description: str = Field("", max_length=2000)


def _get_project(session: Session, project_id: int) -> Project:
    project = session.get(Project, project_id)
    if project is None:
        raise not_found("project", project_id)
    return project


def _check_trainable(project: Project) -> TaskSpec:
    task = get_task(project.task_type)
    if not task.supports("train") or task.config_model is None:
        trainable = [t.title for t in list_tasks() if t.supports("train")]
        raise Conflict(
            f"Training is not available for {task.title} projects in this build; "
            f"these task types train: {', '.join(trainable)}.",
            code="task_not_trainable",
            details={"task_type": project.task_type},
        )
    return task


def _get_split(session: Session, project_id: int, split_id: int) -> Split:
    split = session.get(Split, split_id)
    if split is None or split.project_id != project_id:
        raise Invalid(
            f"split_id={split_id} is not a split of project {project_id}; create a split first.",
            code="unknown_split",
            details={"field": "split_id"},
        )
    return split


def check_data(session: Session, project: Project, split_id: int, config: dict[str, Any]) -> None:
    """The task's check of the split's data before a run (a StudioError naming what is
    missing, such as normal images for an anomaly detector or a varying target)."""
    spec = get_task(project.task_type)
    if spec.check_training is None or project.id is None:
        return
    rows = split_strata.subset_annotation_rows(session, project.id, split_id, ("train", "val"))
    spec.check_training(rows, config)


def resolve_config(data: dict[str, Any], task: str) -> dict[str, Any]:
    """Validate hyperparameters against the task's recipe model and fill the model's default
    image size."""
    spec = get_task(task)
    if spec.config_model is None:
        raise Conflict(
            f"{spec.title} projects have no training recipe in this build.",
            code="task_not_trainable",
            details={"task_type": task},
        )
    config = validate_config(data, spec.config_model, spec.defaults())
    model = get_model(config.model, task)
    resolved = config.model_dump()
    if resolved["image_size"] is None:
        resolved["image_size"] = model.default_image_size
    multiple = model.size_multiple
    # ViTs cut the input into patches, ConvNeXts halve it five times: the side must divide.
    resolved["image_size"] = -(-resolved["image_size"] // multiple) * multiple
    if resolved["freeze_backbone"] is None:
        resolved["freeze_backbone"] = model.frozen_by_default
    if resolved["image_size"] < model.min_image_size:
        raise Invalid(
            f"image_size={resolved['image_size']} is too small for {model.title}; use at least "
            f"{model.min_image_size} px (default {model.default_image_size}).",
            code="invalid_hyperparameters",
            details={"fields": [{"field": "image_size", "min": model.min_image_size}]},
        )
    return resolved


def bind_classes(session: Session, project: Project, config: dict[str, Any]) -> dict[str, Any]:
    """Complete a recipe that depends on the project's classes (its task's `bind_classes`)."""
    spec = get_task(project.task_type)
    if spec.bind_classes is None:
        return config
    rows = session.exec(
        select(LabelClass.id, LabelClass.name, LabelClass.parent_id)
        .where(LabelClass.project_id == project.id)
        .order_by(col(LabelClass.index), col(LabelClass.id))
    ).all()
    names = {cid: name for cid, name, _ in rows}
    parents = {name: names.get(parent) if parent else None for _, name, parent in rows}
    return spec.bind_classes(config, parents)


def default_config(task: str) -> dict[str, Any]:
    return resolve_config({}, task)


def check_weights(config: dict[str, Any], locations: WeightLocations | None) -> None:
    """`pretrained: "required"` fails here, before any job, when the weights are absent."""
    if config.get("pretrained") == "required":
        require_weights(config["model"], locations or WeightLocations.from_env())


def create_experiment(
    session: Session,
    project_id: int,
    body: dict[str, Any],
    locations: WeightLocations | None = None,
) -> Experiment:
    project = _get_project(session, project_id)
    _check_trainable(project)
    try:
        data = ExperimentCreate.model_validate(body)
    except ValidationError as error:
        fields = describe(error)
        raise Invalid(
            f"Invalid experiment: {api_sentence(fields)}",
            code="invalid_experiment",
            details={"fields": fields},
        ) from None
    overrides = {k: v for k, v in body.items() if k not in {"name", "split_id", "description"}}
    config = bind_classes(session, project, resolve_config(overrides, project.task_type))
    _get_split(session, project_id, data.split_id)
    check_weights(config, locations)
    check_data(session, project, data.split_id, config)
    name = data.name or default_name(session, project_id, config["model"])
    _ensure_unique_name(session, project_id, name)
    experiment = Experiment(
        project_id=project_id,
        split_id=data.split_id,
        name=name,
        model_id=config["model"],
        config=config,
        status="created",
        provenance={"description": data.description} if data.description else {},
    )
    session.add(experiment)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        _ensure_unique_name(session, project_id, name)
        raise
    session.refresh(experiment)
    return experiment


def default_name(session: Session, project_id: int, model: str) -> str:
    """A name nobody has to type: "<model>-<n>" with the first n not taken in the project."""
    taken = set(
        session.exec(select(Experiment.name).where(Experiment.project_id == project_id)).all()
    )
    n = len(taken) + 1
    while f"{model}-{n}" in taken:
        n += 1
    return f"{model}-{n}"


def _ensure_unique_name(
    session: Session, project_id: int, name: str, exclude_id: int | None = None
) -> None:
    query = select(Experiment.id).where(
        Experiment.project_id == project_id, Experiment.name == name
    )
    if exclude_id is not None:
        query = query.where(Experiment.id != exclude_id)
    if session.exec(query).first() is not None:
        raise Conflict(
            f"An experiment named {name!r} already exists in this project; choose another name.",
            code="experiment_exists",
            details={"name": name},
        )


def sync_with_job(session: Session, experiment: Experiment) -> Experiment:
    """Make an active experiment follow its job once the job ended without saying so
    (worker killed, studio restarted, cancelled through the jobs API)."""
    if experiment.status not in ACTIVE or experiment.job_id is None:
        return experiment
    job = session.get(Job, experiment.job_id)
    if job is None:
        new = "interrupted"
    elif job.status == JobStatus.running.value and experiment.status == "queued":
        # A worker claimed the job; the experiment is running from then on, not only once the
        # worker has imported torch (the header and the job card agree from the first second).
        experiment.status = "running"
        experiment.started_at = experiment.started_at or utcnow()
        session.add(experiment)
        session.commit()
        session.refresh(experiment)
        return experiment
    elif job.status in (JobStatus.queued.value, JobStatus.running.value):
        return experiment
    elif job.status == JobStatus.interrupted.value:
        new = "interrupted"
    elif job.status == JobStatus.cancelled.value:
        new = "stopped" if experiment.checkpoints.get("last") else "created"
    elif job.status == JobStatus.failed.value:
        new = "failed"
    else:  # succeeded, but the handler did not record a final state
        new = "interrupted"
    experiment.status = new
    if new != "created":
        experiment.finished_at = experiment.finished_at or utcnow()
    session.add(experiment)
    session.commit()
    session.refresh(experiment)
    return experiment


def get_experiment(session: Session, project_id: int, experiment_id: int) -> Experiment:
    experiment = session.get(Experiment, experiment_id)
    if experiment is None or experiment.project_id != project_id:
        raise not_found("experiment", experiment_id)
    return sync_with_job(session, experiment)


def list_experiments(session: Session, project_id: int) -> list[Experiment]:
    _get_project(session, project_id)
    rows = session.exec(
        select(Experiment)
        .where(Experiment.project_id == project_id)
        .order_by(col(Experiment.id).desc())
    ).all()
    return [sync_with_job(session, e) for e in rows]


def update_experiment(
    session: Session, project_id: int, experiment_id: int, body: dict[str, Any]
) -> Experiment:
    experiment = get_experiment(session, project_id, experiment_id)
    body = dict(body)
    if "name" in body:
        name = str(body.pop("name") or "").strip()
        if not name or len(name) > 100:
            raise Invalid(
                "name must be 1-100 characters.",
                code="invalid_experiment",
                details={"field": "name"},
            )
        _ensure_unique_name(session, project_id, name, exclude_id=experiment_id)
        experiment.name = name
    if "description" in body:
        experiment.provenance = {
            **experiment.provenance,
            "description": str(body.pop("description")),
        }
    if "split_id" in body:
        if experiment.status != "created":
            raise _config_locked(experiment)
        split_id = body.pop("split_id")
        if not isinstance(split_id, int):
            raise Invalid("split_id must be an integer.", code="invalid_experiment")
        _get_split(session, project_id, split_id)
        experiment.split_id = split_id
    if body:
        if experiment.status != "created":
            raise _config_locked(experiment)
        project = _get_project(session, project_id)
        merged = {**experiment.config, **body}
        if "model" in body and "image_size" not in body:
            merged["image_size"] = None
        experiment.config = bind_classes(
            session, project, resolve_config(merged, project.task_type)
        )
        experiment.model_id = experiment.config["model"]
    session.add(experiment)
    session.commit()
    session.refresh(experiment)
    return experiment


def _config_locked(experiment: Experiment) -> Conflict:
    return Conflict(
        f"Experiment {experiment.id} has been trained ({experiment.status}); its configuration "
        "can no longer change. Create a new experiment instead (name and description can change).",
        code="experiment_config_locked",
    )


def delete_experiment(
    session: Session, storage: Storage, project_id: int, experiment_id: int
) -> None:
    experiment = get_experiment(session, project_id, experiment_id)
    if experiment.status in ACTIVE:
        raise Conflict(
            f"Experiment {experiment_id} is {experiment.status}; stop it before deleting.",
            code="experiment_running",
        )
    session.execute(delete(MetricPoint).where(col(MetricPoint.experiment_id) == experiment_id))
    session.delete(experiment)
    session.commit()
    storage.remove_tree(storage.experiment_dir(project_id, experiment_id))


def start_training(
    session: Session,
    project_id: int,
    experiment_id: int,
    *,
    resume: bool | None = None,
    epochs: int | None = None,
    locations: WeightLocations | None = None,
) -> Job:
    """Queue a train job. resume=None: resume when a last checkpoint exists, else start fresh."""
    experiment = get_experiment(session, project_id, experiment_id)
    project = _get_project(session, project_id)
    _check_trainable(project)
    if experiment.status in ACTIVE:
        raise Conflict(
            f"Experiment {experiment_id} is already {experiment.status}; "
            "stop it or wait for it to finish.",
            code="experiment_running",
            details={"job_id": experiment.job_id},
        )
    has_last = bool(experiment.checkpoints.get("last"))
    if resume is None:
        resume = has_last and experiment.status in ("stopped", "interrupted", "failed")
    if resume and not has_last:
        raise Conflict(
            f"Experiment {experiment_id} has no checkpoint to resume from; train it first.",
            code="nothing_to_resume",
        )
    if not resume and experiment.status != "created":
        raise Conflict(
            f"Experiment {experiment_id} was already trained ({experiment.status}); resume it "
            "(optionally with more epochs) or create a new experiment.",
            code="experiment_trained",
        )
    if not resume:
        check_weights(experiment.config, locations)
    if epochs is not None:
        if not isinstance(epochs, int) or isinstance(epochs, bool) or not 1 <= epochs <= 1000:
            raise Invalid("epochs must be an integer from 1 to 1000.", code="invalid_epochs")
        if epochs < experiment.epochs_done:
            raise Invalid(
                f"epochs must be at least the {experiment.epochs_done} already trained.",
                code="invalid_epochs",
                details={"epochs_done": experiment.epochs_done},
            )
        config = dict(experiment.config)
        config["epochs"] = epochs
        experiment.config = resolve_config(config, project.task_type)
    elif (
        resume
        and experiment.status == "completed"
        and experiment.epochs_done >= int(experiment.config["epochs"])
    ):
        raise Conflict(
            f"Experiment {experiment_id} completed all {experiment.config['epochs']} epochs; "
            "resume with a higher epochs value.",
            code="nothing_to_resume",
        )
    if not resume:  # a fresh run follows the taxonomy as it is now
        experiment.config = bind_classes(session, project, dict(experiment.config))
        if experiment.split_id is not None:
            check_data(session, project, experiment.split_id, experiment.config)
    experiment.status = "queued"
    experiment.finished_at = None
    return job_service.submit_job_for(
        session,
        experiment,
        kind="train",
        queue=JobQueue.compute,
        project_id=project_id,
        target=f"experiment:{experiment_id}",
        title=f"Train {experiment.name}",
        params={"experiment_id": experiment_id, "resume": bool(resume)},
    )


def stop_training(session: Session, project_id: int, experiment_id: int) -> Experiment:
    """Ask a running training to stop after its current step (it saves and records stopped,
    and its job ends cancelled, not succeeded); a queued one is cancelled at once."""
    experiment = get_experiment(session, project_id, experiment_id)
    if experiment.status not in ACTIVE:
        raise Conflict(
            f"Experiment {experiment_id} is {experiment.status}, not training; nothing to stop.",
            code="experiment_not_running",
        )
    job = session.get(Job, experiment.job_id) if experiment.job_id else None
    if job is not None and job.status == JobStatus.queued.value:
        job_service.cancel_job(session, job_id=job.id)  # type: ignore[arg-type]
        session.refresh(experiment)
        experiment.status = "stopped" if experiment.checkpoints.get("last") else "created"
    else:
        experiment.status = "stopping"
        if job is not None and job.status == JobStatus.running.value:
            job_service.cancel_job(session, job_id=job.id)  # type: ignore[arg-type]
    session.add(experiment)
    session.commit()
    session.refresh(experiment)
    return experiment


def metric_series(session: Session, project_id: int, experiment_id: int) -> dict[str, Any]:
    """{"series": {key: [{"epoch", "step", "value"}, ...]}} ordered by step."""
    experiment = get_experiment(session, project_id, experiment_id)
    rows = session.exec(
        select(MetricPoint)
        .where(MetricPoint.experiment_id == experiment_id)
        .order_by(col(MetricPoint.step), col(MetricPoint.id))
    ).all()
    series: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        series[row.key].append({"epoch": row.epoch, "step": row.step, "value": row.value})
    return {
        "experiment_id": experiment_id,
        "status": experiment.status,
        "job_id": experiment.job_id,
        "series": dict(series),
    }


def read_experiment(experiment: Experiment) -> dict[str, Any]:
    duration = None
    if experiment.started_at is not None:
        end = experiment.finished_at or utcnow()
        start = experiment.started_at
        duration = (_aware(end) - _aware(start)).total_seconds()
    return {
        "id": experiment.id,
        "project_id": experiment.project_id,
        "split_id": experiment.split_id,
        "name": experiment.name,
        "model_id": experiment.model_id,
        "config": experiment.config,
        "status": experiment.status,
        "job_id": experiment.job_id,
        "checkpoints": experiment.checkpoints,
        "best_metric": experiment.best_metric,
        "best_metric_key": experiment.best_metric_key,
        "epochs_done": experiment.epochs_done,
        "weights": experiment.provenance.get("weights"),
        "weights_used": experiment.provenance.get("weights_used"),
        "test_metrics": experiment.provenance.get("test_metrics"),
        "provenance": experiment.provenance,
        "created_at": experiment.created_at,
        "started_at": experiment.started_at,
        "finished_at": experiment.finished_at,
        "duration_seconds": duration,
    }


def _aware(value: datetime) -> datetime:
    from datetime import UTC

    return value if value.tzinfo else value.replace(tzinfo=UTC)


def catalog(task: str | None = None) -> list[dict[str, Any]]:
    return [m.as_dict() for m in list_models(task)]


# --- used by the training worker --------------------------------------------------------------


def begin_run(session: Session, experiment_id: int, job_id: int | None) -> Experiment:
    experiment = session.get(Experiment, experiment_id)
    if experiment is None:
        raise not_found("experiment", experiment_id)
    if experiment.status == "stopping":
        return experiment
    experiment.status = "running"
    experiment.job_id = job_id if job_id is not None else experiment.job_id
    experiment.started_at = experiment.started_at or utcnow()
    experiment.finished_at = None
    session.add(experiment)
    session.commit()
    session.refresh(experiment)
    return experiment


def stop_requested(session: Session, experiment_id: int) -> bool:
    status = session.exec(select(Experiment.status).where(Experiment.id == experiment_id)).first()
    return status == "stopping"


def add_points(session: Session, experiment_id: int, points: list[dict[str, Any]]) -> None:
    for point in points:
        session.add(MetricPoint(experiment_id=experiment_id, **point))
    session.commit()


def drop_points_after(session: Session, experiment_id: int, epoch: int) -> None:
    """Before a resume from the end of `epoch`: curves of epochs that will be redone go."""
    session.execute(
        delete(MetricPoint).where(
            col(MetricPoint.experiment_id) == experiment_id, col(MetricPoint.epoch) > epoch
        )
    )
    session.commit()


def record_checkpoint(
    session: Session, experiment_id: int, which: str, info: dict[str, Any]
) -> None:
    experiment = session.get(Experiment, experiment_id)
    if experiment is None:
        return
    experiment.checkpoints = {**experiment.checkpoints, which: info}
    if which == "best" and info.get("metric") is not None:
        experiment.best_metric = float(info["metric"])
        experiment.best_metric_key = info.get("metric_key")
    session.add(experiment)
    session.commit()


def record_start(session: Session, experiment_id: int, *, weights: str, device: str) -> None:
    """The weights and device a run uses, as soon as it has them (the rest of the provenance
    is written when the run ends)."""
    experiment = session.get(Experiment, experiment_id)
    if experiment is None:
        return
    experiment.provenance = {**experiment.provenance, "weights": weights, "device": device}
    session.add(experiment)
    session.commit()


def record_epoch(session: Session, experiment_id: int, epoch: int) -> None:
    experiment = session.get(Experiment, experiment_id)
    if experiment is None:
        return
    experiment.epochs_done = epoch
    session.add(experiment)
    session.commit()


def finish_run(
    session: Session,
    experiment_id: int,
    *,
    status: str,
    provenance: dict[str, Any] | None = None,
) -> Experiment:
    experiment = session.get(Experiment, experiment_id)
    if experiment is None:
        raise not_found("experiment", experiment_id)
    experiment.status = status
    if provenance is not None:
        keep = {k: v for k, v in experiment.provenance.items() if k in KEPT_PROVENANCE}
        experiment.provenance = {**keep, **provenance}
    experiment.finished_at = utcnow()
    session.add(experiment)
    session.commit()
    session.refresh(experiment)
    return experiment


# --- what the training pages show ----------------------------------------------------------------


def splits_for_training(session: Session, project_id: int) -> list[Split]:
    """The project's splits, newest first (the experiment form's choices)."""
    return list(
        session.exec(
            select(Split).where(Split.project_id == project_id).order_by(col(Split.id).desc())
        ).all()
    )


SMALL_TRAIN_SET = 500  # below this, random initialisation rarely learns real photos
PHOTO_SIDE = 96  # images whose shorter side is at least this are treated as photos


def initialisation_hints(
    session: Session, project_id: int, locations: WeightLocations
) -> dict[str, Any]:
    """What the experiment form needs to warn that a model would start from random
    initialisation on a small set of photos: which models have weights here, each split's
    train size, and whether the project's images are photo-sized (median shorter side)."""
    from app.catalog.weights import find_weights

    project = _get_project(session, project_id)
    sides = sorted(
        min(w, h)
        for w, h in session.exec(
            select(Image.width, Image.height).where(Image.project_id == project_id).limit(1000)
        ).all()
    )
    return {
        "weights": {
            m.id: find_weights(m.id, locations) is not None for m in list_models(project.task_type)
        },
        "train": {
            str(s.id): int((s.counts or {}).get("train", 0))
            for s in splits_for_training(session, project_id)
        },
        "photos": bool(sides) and sides[len(sides) // 2] >= PHOTO_SIDE,
        "small": SMALL_TRAIN_SET,
    }


def experiment_detail(session: Session, project_id: int, experiment_id: int) -> dict[str, Any]:
    """The experiment (read form) with its current job and its split, for the detail page."""
    experiment = get_experiment(session, project_id, experiment_id)
    return {
        "e": read_experiment(experiment),
        "job": session.get(Job, experiment.job_id) if experiment.job_id else None,
        "split": session.get(Split, experiment.split_id) if experiment.split_id else None,
    }
