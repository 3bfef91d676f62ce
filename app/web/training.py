"""Training page: experiment form and list, experiment detail with live curves, compare view."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlmodel import Session

from app.catalog import list_models
from app.catalog.weights import WeightLocations
from app.config import Settings
from app.deps import get_session, get_settings, get_storage
from app.errors import Invalid
from app.services import experiments as service
from app.services import hardware
from app.services import projects as project_service
from app.storage import Storage
from app.tasks import get_task, list_tasks
from app.tasks.hyperparams import APPLIES_WHEN, form_fields
from app.templating import render
from app.web.common import nav_context
from app.web.nav import register_project_page

router = APIRouter()
register_project_page("training", "Training", "/training", 30)


def _number(name: str, raw: str) -> int | float | None:
    raw = raw.strip()
    if raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise Invalid(f"{name}: {raw!r} is not a number.", code="invalid_hyperparameters") from None
    return int(value) if value.is_integer() and "." not in raw and "e" not in raw else value


def _json(name: str, raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError as error:
        raise Invalid(
            f"{name}: not valid JSON ({error.msg} at character {error.pos}); leave it empty "
            "for the default.",
            code="invalid_hyperparameters",
        ) from None


def _task_form(task: str) -> dict[str, list[dict[str, Any]]]:
    spec = get_task(task)
    if spec.config_model is None:
        return {}
    return form_fields(spec.config_model, spec.defaults())


def form_to_body(form: dict[str, Any], task: str) -> dict[str, Any]:
    """Form fields -> the API's JSON body (same validation afterwards, same messages). The
    fields come from the task's recipe model, so every task's form parses the same way."""
    body: dict[str, Any] = {"name": str(form.get("name", "")).strip()}
    split = str(form.get("split_id", "")).strip()
    body["split_id"] = int(split) if split.isdigit() else split
    if form.get("model"):
        body["model"] = str(form["model"])
    augment: dict[str, Any] = {}
    for group in _task_form(task).values():
        for field in group:
            name, key = field["name"], field["key"]
            target = augment if name.startswith("augment_") else body
            if field["kind"] == "bool":
                target[key] = form.get(name) == "on"
            elif field["kind"] == "bool_or_auto":
                raw = str(form.get(name, "")).strip()
                if raw in ("true", "false"):
                    target[key] = raw == "true"
            elif field["kind"] == "json":
                raw = str(form.get(name, "")).strip()
                if raw:
                    target[key] = _json(name, raw)
            elif field["kind"] == "number":
                if name in form:
                    value = _number(name.replace("augment_", "augment."), str(form[name]))
                    if value is not None:
                        target[key] = value
            elif form.get(name):
                target[key] = str(form[name])
    if augment:
        body["augment"] = augment
    return body


def _page_context(
    session: Session,
    project_id: int,
    settings: Settings | None = None,
    storage: Storage | None = None,
) -> dict[str, Any]:
    project = project_service.get_project(session=session, project_id=project_id)
    read = project_service.read_project(session=session, project=project)
    splits = service.splits_for_training(session, project_id)
    experiments = service.list_experiments(session, project_id)
    spec = get_task(project.task_type)
    form = _task_form(project.task_type)
    controlling = {condition[0] for condition in APPLIES_WHEN.values()}
    controllers = {
        f["name"]: f["default"]
        for group in form.values()
        for f in group
        if f["name"] in controlling
    }
    return {
        "p": read,
        "splits": splits,
        "default_name": service.default_name(session, project_id, spec.default_model or "model"),
        "trainable": [t.title for t in list_tasks() if t.supports("train")],
        "experiments": [service.read_experiment(e) for e in experiments],
        "models": list_models(project.task_type),
        "unavailable": hardware.model_availability(storage, list_models(project.task_type))
        if storage is not None
        else {},
        "task_spec": spec,
        "form": form,
        "controllers": controllers,
        "rules": {name: [field, list(values)] for name, (field, values) in APPLIES_WHEN.items()},
        "init_hints": service.initialisation_hints(
            session,
            project_id,
            WeightLocations.from_settings(settings) if settings else WeightLocations.from_env(),
        ),
        **nav_context(read, "training"),
    }


@router.get("/projects/{project_id}/training")
def training_page(
    request: Request,
    project_id: int,
    session: Session = Depends(get_session),
    storage: Storage = Depends(get_storage),
) -> Response:
    context = _page_context(session, project_id, get_settings(request), storage)
    return render(request, "pages/training/index.html", **context)


@router.get("/projects/{project_id}/training/list")
def experiment_list(
    request: Request, project_id: int, session: Session = Depends(get_session)
) -> Response:
    context = _page_context(session, project_id)
    return render(request, "partials/_experiment_list.html", **context)


@router.post("/projects/{project_id}/training/experiments")
async def create_experiment(
    request: Request, project_id: int, session: Session = Depends(get_session)
) -> Response:
    form = dict(await request.form())
    project = project_service.get_project(session=session, project_id=project_id)
    experiment = service.create_experiment(
        session,
        project_id,
        form_to_body(form, project.task_type),
        WeightLocations.from_settings(get_settings(request)),
    )
    return Response(
        status_code=204,
        headers={"HX-Redirect": f"/projects/{project_id}/training/{experiment.id}"},
    )


def _shown(value: Any) -> str:
    if value is True:
        return "yes"
    if value is False:
        return "no"
    if value is None:
        return "auto"
    return str(value)


def _weights_used(weights: str | None) -> str:
    if not weights:
        return "not trained yet"
    if weights.startswith("pretrained:"):
        return f"pretrained ({weights.removeprefix('pretrained:')})"
    return "random initialisation" if weights == "random-init" else weights


def config_rows(config: dict[str, Any], weights: str | None) -> list[tuple[str, str]]:
    """The experiment's configuration as the card lists it: flattened, only the settings that
    apply, readable values, and `pretrained` stated with what was actually loaded."""
    rows = []
    for key, value in flatten(config).items():
        condition = APPLIES_WHEN.get(key)
        if condition is not None and config.get(condition[0]) not in condition[1]:
            continue
        if key == "pretrained":
            wanted = {"auto": "if found locally", "required": "required"}.get(
                "auto" if value is True else str(value), "no"
            )
            rows.append(("pretrained", f"{wanted}; used: {_weights_used(weights)}"))
            continue
        rows.append((key, _shown(value)))
    return rows


def _detail_context(session: Session, project_id: int, experiment_id: int) -> dict[str, Any]:
    project = project_service.get_project(session=session, project_id=project_id)
    read = project_service.read_project(session=session, project=project)
    detail = service.experiment_detail(session, project_id, experiment_id)
    experiment = detail["e"]
    return {
        "p": read,
        **detail,
        "config_rows": config_rows(experiment["config"], experiment.get("weights")),
        "task_spec": get_task(project.task_type),
        **nav_context(read, "training"),
    }


@router.get("/projects/{project_id}/training/compare")
def compare_page(
    request: Request,
    project_id: int,
    ids: list[int] = Query(default_factory=list),
    session: Session = Depends(get_session),
) -> Response:
    project = project_service.get_project(session=session, project_id=project_id)
    read = project_service.read_project(session=session, project=project)
    if len(ids) < 2:
        raise Invalid("Select at least two experiments to compare.", code="compare_needs_two")
    experiments = [
        service.read_experiment(service.get_experiment(session, project_id, i)) for i in ids[:8]
    ]
    # The settings as each experiment's card lists them (only those that apply; "pretrained"
    # with the weights actually loaded), so a difference shown is a difference that mattered.
    listed = [dict(config_rows(e["config"], e.get("weights"))) for e in experiments]
    keys = sorted({k for rows_ in listed for k in rows_})
    rows = []
    for key in keys:
        values = [rows_.get(key, "—") for rows_ in listed]
        rows.append({"key": key, "values": values, "differs": len(set(values)) > 1})
    return render(
        request,
        "pages/training/compare.html",
        p=read,
        experiments=experiments,
        rows=rows,
        **nav_context(read, "training"),
    )


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


@router.get("/projects/{project_id}/training/{experiment_id}")
def experiment_page(
    request: Request, project_id: int, experiment_id: int, session: Session = Depends(get_session)
) -> Response:
    context = _detail_context(session, project_id, experiment_id)
    return render(request, "pages/training/experiment.html", **context)


@router.get("/projects/{project_id}/training/{experiment_id}/summary")
def experiment_summary(
    request: Request, project_id: int, experiment_id: int, session: Session = Depends(get_session)
) -> Response:
    context = _detail_context(session, project_id, experiment_id)
    return render(request, "partials/_experiment_summary.html", oob=True, **context)


@router.post("/projects/{project_id}/training/{experiment_id}/{action}")
async def experiment_action(
    request: Request,
    project_id: int,
    experiment_id: int,
    action: str,
    session: Session = Depends(get_session),
) -> Response:
    """train | stop | resume | delete; the page reloads and reconnects its curves."""
    form = dict(await request.form())
    if action == "train":
        service.start_training(
            session,
            project_id,
            experiment_id,
            resume=False,
            locations=WeightLocations.from_settings(get_settings(request)),
        )
    elif action == "resume":
        epochs = _number("epochs", str(form.get("epochs", "")))
        service.start_training(
            session,
            project_id,
            experiment_id,
            resume=True,
            epochs=int(epochs) if epochs is not None else None,
        )
    elif action == "stop":
        service.stop_training(session, project_id, experiment_id)
        context = _detail_context(session, project_id, experiment_id)
        return render(request, "partials/_experiment_summary.html", oob=True, **context)
    elif action == "delete":
        from app.deps import get_storage

        service.delete_experiment(session, get_storage(request), project_id, experiment_id)
        return Response(
            status_code=204, headers={"HX-Redirect": f"/projects/{project_id}/training"}
        )
    else:
        raise Invalid(
            f"action={action!r} is not valid; use train, stop, resume or delete.",
            code="unknown_action",
        )
    return Response(status_code=204, headers={"HX-Refresh": "true"})
