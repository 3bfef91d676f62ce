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
from app.services import evaluations as service
from app.services import projects as project_service
from app.storage import Storage
from app.templating import render
from app.web.common import nav_context, parse_form
from app.web.nav import register_project_page

router = APIRouter()
register_project_page("evaluation", "Evaluation", "/evaluation", 40)
PAGE_SIZE = 24


def _panel_context(
    session: Session, storage: Storage, project_id: int, experiment: Experiment
) -> dict[str, Any]:
    assert experiment.id is not None
    evaluation = service.find_evaluation(session, experiment_id=experiment.id)
    if evaluation is not None:
        service.sync_status(session, evaluation)
    job = service.evaluation_job(session, evaluation) if evaluation else None
    counts = (
        service.split_subset_counts(session, experiment.split_id)
        if experiment.split_id is not None
        else {}
    )
    return {
        "project_id": project_id,
        "experiment": experiment,
        "evaluation": evaluation,
        "job": job,
        "checkpoints": service.list_checkpoints(storage, experiment),
        "subset_counts": {s: counts.get(s, 0) for s in EVALUATION_SUBSETS},
        "running": evaluation is not None and evaluation.status in service.ACTIVE_STATUSES,
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
    evaluation = service.find_evaluation(session, experiment_id=experiment_id)
    if evaluation is not None:
        service.sync_status(session, evaluation)
        if evaluation.status in service.ACTIVE_STATUSES:
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


@router.get("/projects/{project_id}/evaluation/{experiment_id}/confusion")
def confusion(
    request: Request,
    project_id: int,
    experiment_id: int,
    subset: str = Query("", max_length=8),
    session: Session = Depends(get_session),
) -> Response:
    """The confusion matrix of every evaluated subset together, or of one (`subset`)."""
    experiment = service.get_experiment(session, project_id=project_id, experiment_id=experiment_id)
    evaluation = service.get_evaluation(session, project_id=project_id, experiment_id=experiment_id)
    aggregate = evaluation.aggregate or {}
    if subset and subset not in aggregate.get("by_subset", {}):
        evaluated = ", ".join(aggregate.get("by_subset", {})) or "none"
        raise Invalid(
            f"subset={subset!r} was not evaluated; evaluated subsets: {evaluated}.",
            code="subset_not_evaluated",
        )
    return render(
        request,
        "partials/_confusion_matrix.html",
        agg=aggregate,
        cm_subset=subset,
        project_id=project_id,
        experiment=experiment,
    )


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value not in (None, "") and str(value).isdigit() else None


@router.get("/projects/{project_id}/evaluation/{experiment_id}/results")
def results(
    request: Request,
    project_id: int,
    experiment_id: int,
    subset: str = Query("", max_length=8),
    outcome: str = Query("", max_length=10),
    true_class: str = Query("", max_length=6),
    predicted_class: str = Query("", max_length=6),
    sort: str = Query("confidence", max_length=12),
    page: int = Query(1, ge=1),
    session: Session = Depends(get_session),
) -> Response:
    evaluation = service.get_evaluation(session, project_id=project_id, experiment_id=experiment_id)
    subset = subset if subset in EVALUATION_SUBSETS else ""
    outcome = outcome if outcome in ("correct", "incorrect") else ""
    true_index, predicted_index = _int_or_none(true_class), _int_or_none(predicted_class)
    filters: dict[str, Any] = {
        "subset": subset,
        "outcome": outcome,
        "true_class": true_index,
        "predicted_class": predicted_index,
        "sort": sort,
    }
    items, total = service.list_results(
        session,
        evaluation,
        project_id=project_id,
        subset=subset or None,
        outcome=outcome or None,
        true_class=true_index,
        predicted_class=predicted_index,
        sort=sort,
        page=page,
        page_size=PAGE_SIZE,
    )
    query = {k: ("" if v is None else v) for k, v in filters.items()}
    return render(
        request,
        "partials/_evaluation_results.html",
        project_id=project_id,
        experiment_id=experiment_id,
        classes=(evaluation.aggregate or {}).get("classes", []),
        items=items,
        total=total,
        page=page,
        pages=max(1, -(-total // PAGE_SIZE)),
        query=query,
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
    item = service.get_result(session, evaluation, project_id=project_id, result_id=result_id)
    classes = (evaluation.aggregate or {}).get("classes", [])
    scores = item.prediction.get("scores", [])
    ranked = sorted(
        (
            {"index": i, "name": classes[i] if i < len(classes) else str(i), "score": s}
            for i, s in enumerate(scores)
        ),
        key=lambda row: -row["score"],
    )
    return render(
        request,
        "partials/_evaluation_detail.html",
        item=item,
        classes=classes,
        ranked=ranked[:20],
    )
