"""The evaluation page: completed experiments on the left; configuration, live job, metrics,
confusion matrix, audit and per-image results on the right. Every fragment has a JSON twin
under /api/projects/{pid}/experiments/{eid}/evaluation."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlmodel import Session

from app.deps import get_session, get_storage
from app.errors import Invalid, NotFound
from app.models import Experiment
from app.models.evaluation import EVALUATION_SUBSETS, EvaluationStart
from app.services import classes as class_service
from app.services import decisions, hardware
from app.services import evaluation_results as results_service
from app.services import evaluations as service
from app.services import projects as project_service
from app.storage import Storage
from app.tasks import get_task
from app.templating import render
from app.web.common import nav_context, parse_form
from app.web.nav import register_project_page

router = APIRouter()
register_project_page("evaluation", "Evaluation", "/evaluation", 40)
PAGE_SIZE = 24


def _panel_context(
    session: Session, storage: Storage, project_id: int, experiment: Experiment
) -> dict[str, Any]:
    """The current evaluation (kept until a newer run completes) and that newer run, if any."""
    assert experiment.id is not None
    evaluation = service.find_evaluation(session, experiment_id=experiment.id)
    attempt = service.attempt_of(session, evaluation) if evaluation else None
    active = attempt or evaluation
    job = service.evaluation_job(session, active) if active else None
    counts = (
        service.split_subset_counts(session, experiment.split_id)
        if experiment.split_id is not None
        else {}
    )
    project = project_service.get_project(session=session, project_id=project_id)
    return {
        "project_id": project_id,
        "experiment": experiment,
        "evaluation": evaluation,
        "attempt": attempt,
        "job": job,
        "spec": get_task(project.task_type),
        "colors": class_service.class_colors(session=session, project_id=project_id),
        "devices": hardware.devices(storage),
        "checkpoints": service.list_checkpoints(storage, experiment),
        "subset_counts": {s: counts.get(s, 0) for s in EVALUATION_SUBSETS},
        "decision": decisions.effective_decision(experiment, project.task_type),
        "running": active is not None and active.status in service.ACTIVE_STATUSES,
        "stale": evaluation is not None and service.is_stale(session, evaluation),
    }


def _panel(
    request: Request, session: Session, storage: Storage, project_id: int, experiment_id: int
) -> Response:
    experiment = service.get_experiment(session, project_id=project_id, experiment_id=experiment_id)
    return render(
        request,
        "partials/_evaluation_panel.html",
        **_panel_context(session, storage, project_id, experiment),
    )


@router.get("/projects/{project_id}/evaluation")
def evaluation_page(
    request: Request,
    project_id: int,
    experiment: int | None = Query(None),
    session: Session = Depends(get_session),
    storage: Storage = Depends(get_storage),
) -> Response:
    project = project_service.get_project(session=session, project_id=project_id)
    read = project_service.read_project(session=session, project=project)
    experiments = service.completed_experiments(session, project_id=project_id)
    evaluated = {
        e.id: ev.status
        for e in experiments
        if e.id is not None and (ev := service.find_evaluation(session, experiment_id=e.id))
    }
    selected = None
    if experiment is not None:
        selected = next((e for e in experiments if e.id == experiment), None)
        if selected is None:
            raise NotFound(
                f"Experiment {experiment} is not a finished experiment of this project.",
                code="experiment_not_found",
            )
    elif experiments:
        selected = experiments[0]
    context: dict[str, Any] = {}
    if selected is not None:
        context = _panel_context(session, storage, project_id, selected)
    return render(
        request,
        "pages/evaluation/index.html",
        p=read,
        experiments=experiments,
        evaluated=evaluated,
        selected=selected,
        **context,
        **nav_context(read, "evaluation"),
    )


@router.get("/projects/{project_id}/evaluation/{experiment_id}/panel")
def panel(
    request: Request,
    project_id: int,
    experiment_id: int,
    session: Session = Depends(get_session),
    storage: Storage = Depends(get_storage),
) -> Response:
    return _panel(request, session, storage, project_id, experiment_id)


@router.get("/projects/{project_id}/evaluation/{experiment_id}/poll")
def poll(
    request: Request,
    project_id: int,
    experiment_id: int,
    session: Session = Depends(get_session),
    storage: Storage = Depends(get_storage),
) -> Response:
    """204 (nothing to swap) while the evaluation runs; the whole panel once it has ended."""
    newest = service.newest_evaluation(session, experiment_id=experiment_id)
    if newest is not None:
        service.sync_status(session, newest)
        if newest.status in service.ACTIVE_STATUSES:
            return Response(status_code=204)
    return _panel(request, session, storage, project_id, experiment_id)


@router.post("/projects/{project_id}/evaluation/{experiment_id}")
async def start(
    request: Request,
    project_id: int,
    experiment_id: int,
    session: Session = Depends(get_session),
    storage: Storage = Depends(get_storage),
) -> Response:
    form = await request.form()
    if not form.getlist("subsets"):
        # The API defaults to test; a form with every box cleared means the user forgot.
        raise Invalid("Tick at least one subset to evaluate.", code="validation_error")
    data = parse_form(
        EvaluationStart,
        {
            "checkpoint": form.get("checkpoint") or None,
            "subsets": form.getlist("subsets") or None,
            "batch_size": form.get("batch_size") or None,
            "device": form.get("device") or None,
            "tta": form.getlist("tta"),
        },
    )
    service.start_evaluation(
        session, storage, project_id=project_id, experiment_id=experiment_id, data=data
    )
    return _panel(request, session, storage, project_id, experiment_id)


@router.delete("/projects/{project_id}/evaluation/{experiment_id}")
def reset(
    request: Request,
    project_id: int,
    experiment_id: int,
    session: Session = Depends(get_session),
    storage: Storage = Depends(get_storage),
) -> Response:
    service.reset_evaluation(session, storage, project_id=project_id, experiment_id=experiment_id)
    return _panel(request, session, storage, project_id, experiment_id)


def _int_or_none(value: str | None) -> int | None:
    """A form's class index: digits, or -1 for background; anything else means no filter."""
    if value in (None, ""):
        return None
    text = str(value)
    return int(text) if text.isdigit() or text == "-1" else None


def _flag(value: str) -> bool | None:
    return {"yes": True, "no": False}.get(value)


@router.get("/projects/{project_id}/evaluation/{experiment_id}/results")
def results(
    request: Request,
    project_id: int,
    experiment_id: int,
    subset: str = Query("", max_length=8),
    outcome: str = Query("", max_length=10),
    true_class: str = Query("", max_length=6),
    predicted_class: str = Query("", max_length=6),
    class_index: str = Query("", max_length=6),
    has_fp: str = Query("", max_length=3),
    has_fn: str = Query("", max_length=3),
    sort: str = Query("confidence", max_length=12),
    page: int = Query(1, ge=1, le=1_000_000),
    session: Session = Depends(get_session),
) -> Response:
    evaluation = service.get_evaluation(session, project_id=project_id, experiment_id=experiment_id)
    subset = subset if subset in EVALUATION_SUBSETS else ""
    outcome = outcome if outcome in ("correct", "incorrect") else ""
    filters: dict[str, Any] = {
        "subset": subset,
        "outcome": outcome,
        "true_class": _int_or_none(true_class),
        "predicted_class": _int_or_none(predicted_class),
        "class_index": _int_or_none(class_index),
        "has_fp": _flag(has_fp),
        "has_fn": _flag(has_fn),
    }
    items, total = results_service.list_results(
        session,
        evaluation,
        project_id=project_id,
        subset=subset or None,
        outcome=outcome or None,
        sort=sort,
        page=page,
        page_size=PAGE_SIZE,
        **{k: v for k, v in filters.items() if k not in ("subset", "outcome")},
    )
    query = {k: ("" if v is None else v) for k, v in filters.items()}
    query.update(has_fp=has_fp, has_fn=has_fn, sort=sort)
    project = project_service.get_project(session=session, project_id=project_id)
    return render(
        request,
        "partials/_evaluation_results.html",
        project_id=project_id,
        experiment_id=experiment_id,
        spec=get_task(project.task_type),
        classes=(evaluation.aggregate or {}).get("classes", []),
        colors=class_service.class_colors(session=session, project_id=project_id),
        items=items,
        total=total,
        page=page,
        pages=max(1, -(-total // PAGE_SIZE)),
        query=query,
    )


@router.get("/projects/{project_id}/evaluation/{experiment_id}/confusion")
def confusion(
    request: Request,
    project_id: int,
    experiment_id: int,
    subset: str = Query("", max_length=8),
    session: Session = Depends(get_session),
) -> Response:
    """The confusion-matrix card, for all evaluated subsets or one."""
    evaluation = service.get_evaluation(session, project_id=project_id, experiment_id=experiment_id)
    return render(
        request,
        "partials/_confusion.html",
        base=f"/projects/{project_id}/evaluation/{experiment_id}",
        cm=results_service.confusion(session, evaluation, subset=subset or None),
    )


@router.get("/projects/{project_id}/evaluation/{experiment_id}/results/{result_id}")
def result_detail(
    request: Request,
    project_id: int,
    experiment_id: int,
    result_id: int,
    session: Session = Depends(get_session),
) -> Response:
    evaluation = service.get_evaluation(session, project_id=project_id, experiment_id=experiment_id)
    item = results_service.get_result(
        session, evaluation, project_id=project_id, result_id=result_id
    )
    project = project_service.get_project(session=session, project_id=project_id)
    return render(
        request,
        "partials/_evaluation_detail.html",
        item=item,
        spec=get_task(project.task_type),
        classes=(evaluation.aggregate or {}).get("classes", []),
        colors=class_service.class_colors(session=session, project_id=project_id),
    )


@router.post("/projects/{project_id}/evaluation/{experiment_id}/decision")
async def set_decision(
    request: Request,
    project_id: int,
    experiment_id: int,
    session: Session = Depends(get_session),
    storage: Storage = Depends(get_storage),
) -> Response:
    """Store decision settings from the page (the threshold the histogram's line was dragged
    to); an empty form restores the trained values. The panel comes back re-rendered."""
    form = await request.form()
    values = {k: v for k, v in form.items() if isinstance(v, str) and v.strip()}
    if values:
        decisions.set_decision(
            session, project_id=project_id, experiment_id=experiment_id, data=values
        )
    else:
        decisions.reset_decision(session, project_id=project_id, experiment_id=experiment_id)
    return _panel(request, session, storage, project_id, experiment_id)
