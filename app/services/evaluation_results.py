"""Reading an evaluation's per-image results and match rows, for any task.

Filters: subset; outcome (correct / incorrect); a confusion-matrix cell (true and predicted
class from the match rows, `BACKGROUND` = -1 for "no object"); an image showing a class in
its truth or predictions; images with a false positive or a false negative. Sorts by the
task's error measure, confidence, loss or image. Each filter is an indexed query on
evaluation_result / evaluation_match, so a cell opens as fast for detection as for
classification.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from app.errors import Invalid, NotFound, not_found
from app.models import Evaluation, EvaluationMatch, EvaluationResult, Experiment, Image
from app.models.evaluation import EvaluationResultRead
from app.services.evaluations import evaluation_dir
from app.services.image_files import FileAnswer
from app.storage import Storage

BACKGROUND = -1
RESULT_SORTS = ("error", "-error", "confidence", "-confidence", "loss", "-loss", "image")
OUTCOMES = ("correct", "incorrect")


def _class_clause(column: Any, value: int) -> Any:
    return col(column).is_(None) if value == BACKGROUND else col(column) == value


def _matching_images(evaluation_id: int, *clauses: Any) -> Any:
    return (
        select(EvaluationMatch.image_id)
        .where(EvaluationMatch.evaluation_id == evaluation_id, *clauses)
        .distinct()
    )


def list_results(
    session: Session,
    evaluation: Evaluation,
    *,
    project_id: int,
    subset: str | None = None,
    outcome: str | None = None,
    true_class: int | None = None,
    predicted_class: int | None = None,
    class_index: int | None = None,
    has_fp: bool | None = None,
    has_fn: bool | None = None,
    sort: str = "confidence",
    page: int = 1,
    page_size: int = 48,
) -> tuple[list[EvaluationResultRead], int]:
    """One page of per-image results and the total matching the filters."""
    if sort not in RESULT_SORTS:
        raise Invalid(
            f"sort={sort!r} is not a sort order; use one of: {', '.join(RESULT_SORTS)}.",
            code="invalid_sort",
            details={"valid": list(RESULT_SORTS)},
        )
    if outcome not in (None, "", *OUTCOMES):
        raise Invalid(
            f"outcome={outcome!r} is not valid; use correct or incorrect.", code="invalid_outcome"
        )
    assert evaluation.id is not None
    eid = evaluation.id
    query = (
        select(EvaluationResult, Image.original_name, Image.width, Image.height)
        .join(Image, col(Image.id) == col(EvaluationResult.image_id))
        .where(EvaluationResult.evaluation_id == eid)
    )
    if subset:
        query = query.where(EvaluationResult.subset == subset)
    if outcome:
        query = query.where(EvaluationResult.correct == (outcome == "correct"))
    cell = []
    if true_class is not None:
        cell.append(_class_clause(EvaluationMatch.true_class, true_class))
    if predicted_class is not None:
        cell.append(_class_clause(EvaluationMatch.predicted_class, predicted_class))
    if cell:
        query = query.where(col(EvaluationResult.image_id).in_(_matching_images(eid, *cell)))
    if class_index is not None:
        either = (col(EvaluationMatch.true_class) == class_index) | (
            col(EvaluationMatch.predicted_class) == class_index
        )
        query = query.where(col(EvaluationResult.image_id).in_(_matching_images(eid, either)))
    for flag, column in (
        (has_fp, EvaluationMatch.true_class),
        (has_fn, EvaluationMatch.predicted_class),
    ):
        if flag is not None:
            images = _matching_images(eid, col(column).is_(None))
            inside = col(EvaluationResult.image_id).in_(images)
            query = query.where(inside if flag else ~inside)
    key = {
        "error": (col(EvaluationResult.error).desc(), col(EvaluationResult.id)),
        "-error": (col(EvaluationResult.error).asc(), col(EvaluationResult.id)),
        "confidence": (col(EvaluationResult.score).desc(), col(EvaluationResult.id)),
        "-confidence": (col(EvaluationResult.score).asc(), col(EvaluationResult.id)),
        "loss": (col(EvaluationResult.loss).desc(), col(EvaluationResult.id)),
        "-loss": (col(EvaluationResult.loss).asc(), col(EvaluationResult.id)),
        "image": (col(EvaluationResult.image_id), col(EvaluationResult.id)),
    }[sort]
    count = select(func.count()).select_from(query.subquery())
    total = int(session.exec(count).one())
    rows = session.exec(query.order_by(*key).offset((page - 1) * page_size).limit(page_size)).all()
    experiment_id = evaluation.experiment_id
    return [
        _read(result, name, project_id, w, h, experiment_id) for result, name, w, h in rows
    ], total


def _with_hrefs(prediction: dict[str, Any], project_id: int, experiment_id: int) -> dict[str, Any]:
    """Entries that name an evaluation artefact (`"artefact": "map-12.png"`, a file the task's
    evaluation wrote) get its URL as `href`, so overlays draw them like any mask."""
    out = dict(prediction)
    for key in ("truth", "predicted"):
        entries = prediction.get(key)
        if isinstance(entries, list):
            out[key] = [
                {**e, "href": artefact_url(project_id, experiment_id, str(e["artefact"]))}
                if isinstance(e, dict) and e.get("artefact")
                else e
                for e in entries
            ]
    return out


def _read(
    result: EvaluationResult,
    name: str,
    project_id: int,
    width: int,
    height: int,
    experiment_id: int,
) -> EvaluationResultRead:
    return EvaluationResultRead(
        id=result.id,  # type: ignore[arg-type]
        image_id=result.image_id,
        original_name=name,
        width=width,
        height=height,
        subset=result.subset,
        prediction=_with_hrefs(result.prediction or {}, project_id, experiment_id),
        score=result.score,
        loss=result.loss,
        error=result.error,
        correct=result.correct,
        thumbnail_url=f"/api/projects/{project_id}/images/{result.image_id}/thumbnail",
        file_url=f"/api/projects/{project_id}/images/{result.image_id}/file",
    )


def get_result(
    session: Session, evaluation: Evaluation, *, project_id: int, result_id: int
) -> EvaluationResultRead:
    result = session.get(EvaluationResult, result_id)
    if result is None or result.evaluation_id != evaluation.id:
        raise not_found("result", result_id)
    image = session.get(Image, result.image_id)
    if image is None:
        raise not_found("result", result_id)
    return _read(
        result,
        image.original_name,
        project_id,
        image.width,
        image.height,
        evaluation.experiment_id,
    )


def confusion(
    session: Session, evaluation: Evaluation, *, subset: str | None = None
) -> dict[str, Any]:
    """Counts of (true, predicted) class pairs from the match rows. Rows are true classes,
    columns predicted; a background row/column appears when the task has unmatched objects
    (detection's FP and FN, multi-label's missed and extra labels). `subset` limits it to
    one subset of the evaluation (one it did not cover is refused, naming those it did)."""
    if subset and subset not in evaluation.subsets:
        evaluated = ", ".join(evaluation.subsets) or "none"
        raise Invalid(
            f"subset={subset!r} was not evaluated; evaluated subsets: {evaluated}.",
            code="subset_not_evaluated",
        )
    classes: list[str] = list((evaluation.aggregate or {}).get("classes", []))
    query = select(EvaluationMatch.true_class, EvaluationMatch.predicted_class, func.count()).where(
        EvaluationMatch.evaluation_id == evaluation.id
    )
    if subset:
        query = query.where(EvaluationMatch.subset == subset)
    counts = session.exec(
        query.group_by(col(EvaluationMatch.true_class), col(EvaluationMatch.predicted_class))
    ).all()
    background = any(t is None or p is None for t, p, _ in counts)
    size = len(classes) + (1 if background else 0)
    matrix = [[0] * size for _ in range(size)]

    def slot(index: int | None) -> int | None:
        if index is None:
            return len(classes) if background else None
        return index if 0 <= index < len(classes) else None

    for t, p, n in counts:
        i, j = slot(t), slot(p)
        if i is not None and j is not None:
            matrix[i][j] += int(n)
    labels = [*classes, "background"] if background else list(classes)
    indices = [*range(len(classes)), BACKGROUND] if background else list(range(len(classes)))
    return {
        "labels": labels,
        "indices": indices,
        "matrix": matrix,
        "background": background,
        "subset": subset,
        "subsets": list(evaluation.subsets),
    }


ARTEFACT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,119}$")
ARTEFACT_TYPES = {".png": "image/png", ".json": "application/json"}


def artefact_url(project_id: int, experiment_id: int, name: str) -> str:
    """Where the GUI and API clients fetch an evaluation artefact (predicted masks, maps)."""
    return f"/api/projects/{project_id}/experiments/{experiment_id}/evaluation/artefacts/{name}"


def artefact_file(
    session: Session, storage: Storage, evaluation: Evaluation, name: str
) -> FileAnswer:
    """A file a task's evaluation wrote into its folder (EvalOutcome.files), by plain name:
    no folders, only PNG and JSON; the ETag is the evaluation id and name (files never change)."""
    suffix = name[name.rfind(".") :].lower() if "." in name else ""
    if not ARTEFACT_NAME.match(name) or ".." in name or suffix not in ARTEFACT_TYPES:
        raise Invalid(
            f"{name!r} is not an artefact name; use a plain file name ending in "
            f"{' or '.join(ARTEFACT_TYPES)}.",
            code="invalid_artefact_name",
        )
    experiment = session.get(Experiment, evaluation.experiment_id)
    assert experiment is not None and evaluation.id is not None
    folder = evaluation_dir(storage, experiment.project_id, experiment.id or 0, evaluation.id)
    path = storage.resolve(f"{storage.relative(folder)}/{name}")
    if not path.is_file():
        raise NotFound(
            f"Evaluation {evaluation.id} has no artefact {name!r}.", code="artefact_not_found"
        )
    return FileAnswer(
        path=path, media_type=ARTEFACT_TYPES[suffix], etag=f'"{evaluation.id}-{name}"'
    )
