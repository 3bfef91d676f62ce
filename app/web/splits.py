"""Split page: strategy form with live preview, the saved splits (locked), delete."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Form, Request, Response
from sqlmodel import Session

from app.deps import get_session
from app.errors import Invalid
from app.models.split import (
    GROUP_STRATEGIES,
    KFOLD_STRATEGIES,
    STRATEGIES,
    SplitPreview,
    SplitRequest,
)
from app.services import projects as project_service
from app.services import splits as service
from app.tasks import get_task
from app.templating import render
from app.web.common import nav_context, parse_form
from app.web.nav import register_project_page

router = APIRouter()
register_project_page("splits", "Splits", "/splits", 20)

STRATEGY_TITLES = {
    "stratified": "Stratified train/val/test",
    "stratified_kfold": "Stratified k-fold",
    "group": "Group-aware train/val/test",
    "group_kfold": "Group k-fold",
    "leave_one_group_out": "Leave one group out",
    "predefined": "Predefined (from the import)",
}
assert set(STRATEGY_TITLES) == set(STRATEGIES)


def _number(value: str, field: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise Invalid(f"{field}: {value!r} is not a number.", code="validation_error") from None


def _request(
    name: str = Form(""),
    strategy: str = Form("stratified"),
    ratio_train: str = Form("80"),
    ratio_val: str = Form("10"),
    ratio_test: str = Form("10"),
    seed: str = Form("42"),
    k: str = Form("5"),
    test_percent: str = Form("0"),
    group_attribute: str = Form(""),
    near_duplicates: str = Form("group"),
    keep_out_asked: str = Form(""),
    keep_out_of_train: str = Form(""),
) -> SplitRequest:
    """The form's fields (percentages) as the API's request body; a dependency, so preview
    and save read the same form the same way."""
    data: dict[str, Any] = {
        "name": name,
        "strategy": strategy,
        "seed": seed,
        "near_duplicates": near_duplicates or "group",
    }
    if strategy in KFOLD_STRATEGIES:
        data["k"] = k
        data["test_ratio"] = _number(test_percent or "0", "test %") / 100
    elif strategy != "predefined":
        percents = {"train": ratio_train, "val": ratio_val, "test": ratio_test}
        if strategy == "leave_one_group_out":
            percents.pop("test")
        values = {key: _number(value or "0", f"{key} %") for key, value in percents.items()}
        total = sum(values.values())
        if total <= 0:
            raise Invalid("ratios: give train a share above 0%.", code="validation_error")
        data["ratios"] = {key: value / total for key, value in values.items() if value > 0}
    if strategy in GROUP_STRATEGIES:
        data["group_attribute"] = group_attribute or None
    if keep_out_asked and not keep_out_of_train:  # the task's keep-out box was cleared
        data["keep_out_of_train"] = []
    return parse_form(SplitRequest, data)


def _chart(preview_split: Any, classes: list[str]) -> str:
    """Chart.js data for one split: each class's share (%) of every subset (val folds + test)."""
    datasets = []
    for summary in preview_split.subsets:
        if summary.fold is not None and summary.subset == "train":
            continue  # a fold's train is the complement of its val
        label = summary.subset if summary.fold is None else f"val fold {summary.fold}"
        count = summary.count or 1
        datasets.append(
            {
                "label": f"{label} ({summary.count})",
                "data": [round(100 * summary.classes.get(c, 0) / count, 2) for c in classes],
            }
        )
    return json.dumps({"labels": classes, "datasets": datasets})


def _list(request: Request, session: Session, project_id: int) -> Response:
    splits = service.read_splits(session, service.list_splits(session, project_id))
    project = project_service.get_project(session=session, project_id=project_id)
    return render(
        request,
        "partials/_split_list.html",
        splits=splits,
        project_id=project_id,
        task_type=project.task_type,
    )


@router.get("/projects/{project_id}/splits")
def splits_page(
    request: Request, project_id: int, session: Session = Depends(get_session)
) -> Response:
    project = project_service.get_project(session=session, project_id=project_id)
    read = project_service.read_project(session=session, project=project)
    splits = service.read_splits(session, service.list_splits(session, project_id))
    return render(
        request,
        "pages/splits/index.html",
        p=read,
        splits=splits,
        project_id=project_id,
        task_type=project.task_type,
        strategies=STRATEGY_TITLES,
        attributes=service.attribute_choices(session, project_id),
        **nav_context(read, "splits"),
    )


@router.post("/projects/{project_id}/splits/preview")
def preview(
    request: Request,
    project_id: int,
    data: SplitRequest = Depends(_request),
    session: Session = Depends(get_session),
) -> Response:
    result: SplitPreview = service.preview_split(session, project_id, data)
    charts = [_chart(planned, result.classes) for planned in result.splits[:8]]
    project = project_service.get_project(session=session, project_id=project_id)
    return render(
        request,
        "partials/_split_preview.html",
        preview=result,
        charts=charts,
        project_id=project_id,
        strata=get_task(project.task_type).strata_title,
    )


@router.post("/projects/{project_id}/splits")
def create(
    request: Request,
    project_id: int,
    data: SplitRequest = Depends(_request),
    session: Session = Depends(get_session),
) -> Response:
    service.create_split(session, project_id, data)
    response = _list(request, session, project_id)
    response.headers["HX-Trigger"] = "split-created"
    return response


@router.delete("/projects/{project_id}/splits/{split_id}")
def delete(
    request: Request, project_id: int, split_id: int, session: Session = Depends(get_session)
) -> Response:
    service.delete_split(session, project_id, split_id)
    return _list(request, session, project_id)
