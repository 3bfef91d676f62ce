"""Evaluation API: start / read / reset an experiment's evaluation, its per-image results and
the checkpoints it can use."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Header, Query, Response
from fastapi.responses import FileResponse
from sqlmodel import Session

from app.deps import get_session, get_storage
from app.models import Page
from app.models.evaluation import (
    CheckpointRead,
    EvaluationRead,
    EvaluationResultRead,
    EvaluationStart,
    EvaluationStarted,
)
from app.services import evaluation_results as results_service
from app.services import evaluations as service
from app.services import jobs as job_service
from app.services.image_files import etag_matches, parse_hide
from app.storage import Storage

router = APIRouter(tags=["evaluations"])
BASE = "/projects/{project_id}/experiments/{experiment_id}"


@router.get(
    f"{BASE}/checkpoints",
    response_model=Page[CheckpointRead],
    summary="List an experiment's checkpoints",
)
def list_checkpoints(
    project_id: int,
    experiment_id: int,
    session: Session = Depends(get_session),
    storage: Storage = Depends(get_storage),
) -> Page[CheckpointRead]:
    """Only checkpoints whose files exist (what evaluation and export can use): `best` first,
    then `last`, each with its epoch, metric, save time and size."""
    experiment = service.get_experiment(session, project_id=project_id, experiment_id=experiment_id)
    items = service.list_checkpoints(storage, experiment)
    return Page(items=items, total=len(items), page=1, page_size=len(items))


@router.post(
    f"{BASE}/evaluation",
    response_model=EvaluationStarted,
    status_code=202,
    summary="Evaluate an experiment",
)
def start_evaluation(
    project_id: int,
    experiment_id: int,
    data: EvaluationStart | None = Body(None),
    session: Session = Depends(get_session),
    storage: Storage = Depends(get_storage),
) -> EvaluationStarted:
    """Queues an `evaluate` job for a checkpoint (`best` by default) on subsets of the
    experiment's split (`["test"]` by default; `train`, `val`, `test` combine). Optional
    `batch_size`, `device` (auto, cpu, cuda) and `tta` (`hflip`, `multiscale`). The current
    evaluation stays until this one completes, then it is replaced; a failed run leaves it
    untouched. 409 while one runs."""
    evaluation, job = service.start_evaluation(
        session,
        storage,
        project_id=project_id,
        experiment_id=experiment_id,
        data=data or EvaluationStart(),
    )
    return EvaluationStarted(
        evaluation=service.read_evaluation(session, evaluation), job=job_service.read_job(job)
    )


@router.get(f"{BASE}/evaluation", response_model=EvaluationRead, summary="Get the evaluation")
def get_evaluation(
    project_id: int, experiment_id: int, session: Session = Depends(get_session)
) -> EvaluationRead:
    """The current evaluation (the newest completed, else the newest): status (queued,
    running, completed, failed, cancelled, interrupted), `aggregate` metrics by the task's keys
    (GET /api/tasks lists them) with `by_subset`, and the leakage `audit`. `attempt` describes
    a newer run that has not completed (its status and error)."""
    evaluation = service.get_evaluation(session, project_id=project_id, experiment_id=experiment_id)
    return service.read_evaluation(session, evaluation)


@router.delete(f"{BASE}/evaluation", status_code=204, summary="Reset the evaluation")
def reset_evaluation(
    project_id: int,
    experiment_id: int,
    session: Session = Depends(get_session),
    storage: Storage = Depends(get_storage),
) -> Response:
    """Deletes the experiment's evaluations, per-image results and files at once (cancels a
    running job)."""
    service.reset_evaluation(session, storage, project_id=project_id, experiment_id=experiment_id)
    return Response(status_code=204)


@router.get(
    f"{BASE}/evaluation/results",
    response_model=Page[EvaluationResultRead],
    summary="List per-image results",
)
def list_results(
    project_id: int,
    experiment_id: int,
    subset: str | None = Query(None, pattern="^(train|val|test)$"),
    outcome: str | None = Query(None, pattern="^(correct|incorrect)$"),
    true_class: int | None = Query(
        None, ge=-1, le=100_000, description="True class index of a match; -1 = background"
    ),
    predicted_class: int | None = Query(
        None, ge=-1, le=100_000, description="Predicted class index of a match; -1 = background"
    ),
    class_index: int | None = Query(
        None, ge=0, le=100_000, description="Images whose truth or prediction has this class"
    ),
    has_fp: bool | None = Query(None, description="Images with (true) or without a false positive"),
    has_fn: bool | None = Query(None, description="Images with (true) or without a false negative"),
    sort: str = Query(
        "confidence", description="error, confidence, loss or image; a leading - reverses"
    ),
    page: int = Query(1, ge=1, le=1_000_000),
    page_size: int = Query(48, ge=1, le=500),
    session: Session = Depends(get_session),
) -> Page[EvaluationResultRead]:
    """`error` sorts the worst images first (the task's error measure: wrong labels, FP + FN,
    ...), `confidence` the most confident first, `loss` the highest loss first; a leading `-`
    reverses. Class indices are positions in `aggregate.classes`; `true_class` and
    `predicted_class` select a confusion-matrix cell (GET .../evaluation/confusion)."""
    evaluation = service.get_evaluation(session, project_id=project_id, experiment_id=experiment_id)
    items, total = results_service.list_results(
        session,
        evaluation,
        project_id=project_id,
        subset=subset,
        outcome=outcome,
        true_class=true_class,
        predicted_class=predicted_class,
        class_index=class_index,
        has_fp=has_fp,
        has_fn=has_fn,
        sort=sort,
        page=page,
        page_size=page_size,
    )
    return Page(items=items, total=total, page=page, page_size=page_size)


@router.get(f"{BASE}/evaluation/confusion", summary="Confusion matrix from the match rows")
def get_confusion(
    project_id: int,
    experiment_id: int,
    subset: str | None = Query(None, pattern="^(train|val|test)$"),
    session: Session = Depends(get_session),
) -> dict[str, Any]:
    """`matrix[i][j]` counts matches with true class `indices[i]` and predicted `indices[j]`
    (-1 = background: a missed object or a false detection). `subset` limits it to one
    subset; `subsets` says which the evaluation covered."""
    evaluation = service.get_evaluation(session, project_id=project_id, experiment_id=experiment_id)
    return results_service.confusion(session, evaluation, subset=subset)


@router.get(
    f"{BASE}/evaluation/artefacts/{{name}}",
    response_class=FileResponse,
    summary="A file the evaluation wrote (predicted masks, anomaly maps)",
)
def get_artefact(
    project_id: int,
    experiment_id: int,
    name: str,
    hide: str | None = Query(
        None,
        max_length=4000,
        description="Colour an index-mask PNG with the class colours, leaving these class "
        "indices clear (comma-separated; empty = show every class)",
    ),
    tint: str | None = Query(
        None, max_length=7, description="With hide: one colour (hex) for every shown class"
    ),
    if_none_match: str | None = Header(None),
    session: Session = Depends(get_session),
    storage: Storage = Depends(get_storage),
) -> Response:
    """Files a task's evaluation keeps beside its rows (PNG or JSON), by the plain names its
    prediction JSON references; they go with the evaluation. With `hide`, an index-mask PNG
    comes back as a transparent overlay in the project's class colours."""
    evaluation = service.get_evaluation(session, project_id=project_id, experiment_id=experiment_id)
    if hide is not None:
        data, etag = results_service.artefact_overlay(
            session, storage, evaluation, name, hide=parse_hide(hide) or set(), tint=tint
        )
        headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
        if etag_matches(if_none_match, etag):
            return Response(status_code=304, headers=headers)
        return Response(content=data, media_type="image/png", headers=headers)
    answer = results_service.artefact_file(session, storage, evaluation, name)
    return FileResponse(
        answer.path,
        media_type=answer.media_type,
        headers={"ETag": answer.etag, "Cache-Control": "private, max-age=86400"},
    )


@router.get(
    f"{BASE}/evaluation/results/{{result_id}}",
    response_model=EvaluationResultRead,
    summary="Get one per-image result",
)
def get_result(
    project_id: int,
    experiment_id: int,
    result_id: int,
    session: Session = Depends(get_session),
) -> EvaluationResultRead:
    evaluation = service.get_evaluation(session, project_id=project_id, experiment_id=experiment_id)
    return results_service.get_result(
        session, evaluation, project_id=project_id, result_id=result_id
    )
