"""Decision settings: how a trained model's outputs are read, changeable without retraining.

A task that has them declares a pydantic `decision_model` (TaskSpec): anomaly detection's
threshold on the image score. Training calibrates the values and records them in the
experiment's provenance (from the best checkpoint); a user may override them, stored as
`provenance["decision"]`. The effective values (override over trained) are what evaluation
and export use (the handlers merge them into the model's task facts) and what prediction
passes to the decoder as options, so a changed threshold applies to the studio's predictions
at once and to exported files from their next export.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm.attributes import flag_modified
from sqlmodel import Session

from app.errors import Conflict, Invalid
from app.models import Experiment, Project
from app.services.experiments import get_experiment
from app.tasks import get_task

OVERRIDE = "decision"


def _fields(task: str) -> list[str]:
    model = get_task(task).decision_model
    return list(model.model_fields) if model is not None else []


def trained_decision(experiment: Experiment, task: str) -> dict[str, Any]:
    """The values training calibrated (empty before training)."""
    provenance = experiment.provenance or {}
    return {k: provenance[k] for k in _fields(task) if provenance.get(k) is not None}


def effective_decision(experiment: Experiment, task: str) -> dict[str, Any]:
    """The override over the trained values: what evaluation, export and prediction use."""
    override = (experiment.provenance or {}).get(OVERRIDE) or {}
    merged = trained_decision(experiment, task)
    merged.update({k: v for k, v in override.items() if k in _fields(task)})
    return merged


def read_decision(experiment: Experiment, task: str) -> dict[str, Any]:
    model = get_task(task).decision_model
    trained = trained_decision(experiment, task)
    current = effective_decision(experiment, task)
    return {
        "experiment_id": experiment.id,
        "decision": current,
        "trained": trained,
        "changed": current != trained,
        "schema": model.model_json_schema() if model is not None else None,
    }


def _experiment(session: Session, project_id: int, experiment_id: int) -> tuple[Experiment, str]:
    experiment = get_experiment(session, project_id, experiment_id)
    project = session.get(Project, project_id)
    assert project is not None
    spec = get_task(project.task_type)
    if spec.decision_model is None:
        raise Conflict(
            f"{spec.title} models have no decision settings to change.",
            code="no_decision_settings",
            details={"task_type": project.task_type},
        )
    return experiment, project.task_type


def get_decision(session: Session, *, project_id: int, experiment_id: int) -> dict[str, Any]:
    experiment, task = _experiment(session, project_id, experiment_id)
    return read_decision(experiment, task)


def set_decision(
    session: Session, *, project_id: int, experiment_id: int, data: dict[str, Any]
) -> dict[str, Any]:
    """Validate and store an override; the trained values stay for a later reset."""
    experiment, task = _experiment(session, project_id, experiment_id)
    if not trained_decision(experiment, task):
        raise Conflict(
            f"Experiment {experiment_id} has not been trained (or trained without calibrating "
            "its decision settings); train it first.",
            code="not_calibrated",
        )
    model = get_task(task).decision_model
    assert model is not None
    try:
        values = model.model_validate({**effective_decision(experiment, task), **data})
    except ValidationError as error:
        parts = [
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in error.errors()
        ]
        raise Invalid(
            "Invalid decision settings: " + "; ".join(parts) + ".",
            code="invalid_decision",
            details={"fields": [{"field": ".".join(map(str, e["loc"]))} for e in error.errors()]},
        ) from None
    return _store(session, experiment, task, values.model_dump())


def reset_decision(session: Session, *, project_id: int, experiment_id: int) -> dict[str, Any]:
    """Back to the values training calibrated."""
    experiment, task = _experiment(session, project_id, experiment_id)
    return _store(session, experiment, task, None)


def _store(
    session: Session, experiment: Experiment, task: str, override: dict[str, Any] | None
) -> dict[str, Any]:
    """Write (or, with None, remove) the override in the experiment's provenance."""
    provenance = dict(experiment.provenance or {})
    if override is None:
        provenance.pop(OVERRIDE, None)
    else:
        provenance[OVERRIDE] = override
    experiment.provenance = provenance
    flag_modified(experiment, "provenance")
    session.add(experiment)
    session.commit()
    session.refresh(experiment)
    return read_decision(experiment, task)


def decision_for_experiment(session: Session, experiment_id: int) -> dict[str, Any]:
    """The effective values for an experiment id (any task; empty when it has none)."""
    experiment = session.get(Experiment, experiment_id)
    if experiment is None:
        return {}
    project = session.get(Project, experiment.project_id)
    values = effective_decision(experiment, project.task_type) if project else {}
    from app.services import gate  # a dual-head model's gate rules travel the same way

    if gate.is_dual(experiment):
        values["gate"] = gate.effective_rules(session, experiment)
    return values
