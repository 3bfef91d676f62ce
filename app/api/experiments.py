"""Experiments API: CRUD, train/stop/resume, per-epoch metrics, checkpoints; the model catalog.

Live events stream from the experiment's job: GET /api/jobs/{job_id}/events (SSE).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Response
from fastapi.responses import RedirectResponse
from sqlmodel import Session

from app.catalog import list_models
from app.catalog.weights import WeightLocations
from app.config import Settings
from app.deps import get_session, get_settings, get_storage
from app.errors import Conflict, Invalid, NotFound
from app.services import decisions as decision_service
from app.services import experiments as service
from app.services import hardware
from app.services import jobs as job_service
from app.storage import Storage
from app.tasks import get_task
from app.tasks.hyperparams import hyperparameter_schema

router = APIRouter(tags=["experiments"])

BASE = "/projects/{project_id}/experiments"


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise Invalid("The request body must be a JSON object.", code="invalid_body")
    return body


@router.get("/catalog/models", summary="Models available for a task")
def catalog_models(
    task: str | None = Query(None, max_length=40, description="A task key; all when absent"),
    storage: Storage = Depends(get_storage),
) -> dict[str, Any]:
    """Ids, titles, families, tasks, parameter counts (millions) and default image sizes;
    `unavailable` says why a model cannot train on these workers (feature-memory anomaly
    methods without local pretrained weights), null when it can."""
    if task is not None:
        get_task(task)  # 422 naming the task types when unknown
    models = list_models(task)
    reasons = hardware.model_availability(storage, models)
    items = [{**m.as_dict(), "unavailable": reasons.get(m.id)} for m in models]
    return {"items": items, "total": len(items), "page": 1, "page_size": len(items)}


@router.get("/catalog/hyperparameters", summary="A task's hyperparameters with defaults")
def catalog_hyperparameters(
    task: str = Query(..., max_length=40, description="A task key from GET /api/tasks"),
) -> dict[str, Any]:
    """The task's recipe: resolved defaults, and the JSON schema with bounds, help texts and
    form groups (`basic`, `augment`, `task`, `advanced`)."""
    spec = get_task(task)
    if spec.config_model is None:
        raise Conflict(
            f"{spec.title} projects have no training recipe in this build.",
            code="task_not_trainable",
            details={"task_type": task},
        )
    return {
        "task": task,
        "defaults": service.default_config(task),
        "schema": hyperparameter_schema(spec.config_model),
    }


@router.get(BASE, summary="List a project's experiments")
def list_experiments(project_id: int, session: Session = Depends(get_session)) -> dict[str, Any]:
    """Newest first, each with status, model, best metric, test metrics and duration."""
    items = [service.read_experiment(e) for e in service.list_experiments(session, project_id)]
    return {"items": items, "total": len(items), "page": 1, "page_size": max(1, len(items))}


@router.post(BASE, status_code=201, summary="Create an experiment")
def create_experiment(
    project_id: int,
    body: Any = Body(..., examples=[{"name": "baseline", "split_id": 1, "epochs": 10}]),
    session: Session = Depends(get_session),
    settings: Settings = Depends(get_settings),
) -> dict[str, Any]:
    """`{"name", "split_id"}` plus any hyperparameter to override the task's defaults
    (GET /api/catalog/hyperparameters lists them). `"pretrained": "required"` answers 422
    `weights_missing` when the model's weights are not on this machine."""
    experiment = service.create_experiment(
        session, project_id, _object(body), WeightLocations.from_settings(settings)
    )
    return service.read_experiment(experiment)


@router.get(BASE + "/{experiment_id}", summary="Get an experiment")
def get_experiment(
    project_id: int, experiment_id: int, session: Session = Depends(get_session)
) -> dict[str, Any]:
    return service.read_experiment(service.get_experiment(session, project_id, experiment_id))


@router.patch(BASE + "/{experiment_id}", summary="Rename or reconfigure an experiment")
def update_experiment(
    project_id: int,
    experiment_id: int,
    body: Any = Body(...),
    session: Session = Depends(get_session),
) -> dict[str, Any]:
    """Name and description always; split and hyperparameters only while never trained (409)."""
    experiment = service.update_experiment(session, project_id, experiment_id, _object(body))
    return service.read_experiment(experiment)


@router.delete(BASE + "/{experiment_id}", status_code=204, summary="Delete an experiment")
def delete_experiment(
    project_id: int,
    experiment_id: int,
    session: Session = Depends(get_session),
    storage: Storage = Depends(get_storage),
) -> Response:
    """Removes its rows and checkpoint files; 409 while it is queued, running or stopping."""
    service.delete_experiment(session, storage, project_id, experiment_id)
    return Response(status_code=204)


def _train(
    session: Session,
    project_id: int,
    experiment_id: int,
    body: Any,
    resume: bool | None,
    settings: Settings,
) -> dict[str, Any]:
    data = _object(body) if body is not None else {}
    unknown = set(data) - {"resume", "epochs"}
    if unknown:
        raise Invalid(
            f"Unknown field(s) {sorted(unknown)}; this endpoint takes resume (true/false) and "
            "epochs (to raise the epoch count when resuming).",
            code="invalid_body",
        )
    if resume is None and "resume" in data:
        if not isinstance(data["resume"], bool):
            raise Invalid("resume must be true or false.", code="invalid_body")
        resume = data["resume"]
    job = service.start_training(
        session,
        project_id,
        experiment_id,
        resume=resume,
        epochs=data.get("epochs"),
        locations=WeightLocations.from_settings(settings),
    )
    experiment = service.get_experiment(session, project_id, experiment_id)
    return {"job": job_service.read_job(job), "experiment": service.read_experiment(experiment)}


@router.post(BASE + "/{experiment_id}/train", status_code=202, summary="Start training")
def train(
    project_id: int,
    experiment_id: int,
    body: Any = Body(None),
    session: Session = Depends(get_session),
    settings: Settings = Depends(get_settings),
) -> dict[str, Any]:
    """Queues a train job (202 + job). Optional `{"resume": true, "epochs": N}` continues from
    the last checkpoint; 409 while one is already running."""
    return _train(session, project_id, experiment_id, body, None, settings)


@router.post(BASE + "/{experiment_id}/resume", status_code=202, summary="Resume training")
def resume(
    project_id: int,
    experiment_id: int,
    body: Any = Body(None),
    session: Session = Depends(get_session),
    settings: Settings = Depends(get_settings),
) -> dict[str, Any]:
    """From the last checkpoint (optimizer and scheduler state included); `{"epochs": N}`
    raises the epoch count."""
    return _train(session, project_id, experiment_id, body, True, settings)


@router.post(BASE + "/{experiment_id}/stop", status_code=202, summary="Stop training")
def stop(
    project_id: int, experiment_id: int, session: Session = Depends(get_session)
) -> dict[str, Any]:
    """The worker finishes its current step, saves a checkpoint and records `stopped`."""
    return service.read_experiment(service.stop_training(session, project_id, experiment_id))


@router.get(BASE + "/{experiment_id}/metrics", summary="Metric series of an experiment")
def metrics(
    project_id: int, experiment_id: int, session: Session = Depends(get_session)
) -> dict[str, Any]:
    """`{"series": {key: [{"epoch", "step", "value"}]}}`: per-epoch train/val metrics, lr,
    images/s, throttled per-step loss (train/step_loss) and test metrics."""
    return service.metric_series(session, project_id, experiment_id)


@router.get(BASE + "/{experiment_id}/events", summary="Live events of the current training (SSE)")
def events(
    project_id: int, experiment_id: int, session: Session = Depends(get_session)
) -> RedirectResponse:
    """Redirects (307) to the SSE stream of the experiment's current job,
    /api/jobs/{job_id}/events; 404 when it was never trained."""
    experiment = service.get_experiment(session, project_id, experiment_id)
    if experiment.job_id is None:
        raise NotFound(
            f"Experiment {experiment_id} has not been trained yet; there are no events.",
            code="no_training_job",
        )
    return RedirectResponse(f"/api/jobs/{experiment.job_id}/events", status_code=307)


# GET .../experiments/{experiment_id}/checkpoints is served by app/api/evaluations.py: only
# the checkpoint files that exist, which is what evaluation and export can use.


@router.get(BASE + "/{experiment_id}/decision", summary="Decision settings (e.g. a threshold)")
def get_decision(
    project_id: int, experiment_id: int, session: Session = Depends(get_session)
) -> dict[str, Any]:
    """How the trained model's outputs are read, changeable without retraining (anomaly
    detection: `threshold` on the image score). `decision` holds the values in use, `trained`
    those training calibrated on the validation subset; 409 for tasks without any."""
    return decision_service.get_decision(
        session, project_id=project_id, experiment_id=experiment_id
    )


@router.put(BASE + "/{experiment_id}/decision", summary="Change decision settings")
def set_decision(
    project_id: int,
    experiment_id: int,
    body: Any = Body(..., examples=[{"threshold": 0.42}]),
    session: Session = Depends(get_session),
) -> dict[str, Any]:
    """Stored with the experiment: evaluations and exports made afterwards and the studio's
    predictions use it (an export made before keeps the value in its metadata). Retraining
    calibrates afresh and drops the change."""
    return decision_service.set_decision(
        session, project_id=project_id, experiment_id=experiment_id, data=_object(body)
    )


@router.delete(BASE + "/{experiment_id}/decision", summary="Restore the trained decision settings")
def reset_decision(
    project_id: int, experiment_id: int, session: Session = Depends(get_session)
) -> dict[str, Any]:
    return decision_service.reset_decision(
        session, project_id=project_id, experiment_id=experiment_id
    )
