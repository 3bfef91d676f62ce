"""Reading an evaluation's per-image results and match rows, for any task.

Filters: subset; outcome (correct / incorrect); a confusion-matrix cell (true and predicted
class from the match rows, `BACKGROUND` = -1 for "no object"); an image showing a class in
its truth or predictions; images with a false positive or a false negative. Sorts by the
task's error measure, confidence (the row's score), loss, image, or `cell`: the image whose
match in the chosen cell has the largest score first (a confident mistake, a large confusion
in pixels). Each filter is an indexed query on evaluation_result / evaluation_match, so a
cell opens as fast for detection as for classification.

Artefact-backed shapes: a truth or predicted entry whose geometry names an evaluation
artefact ({"artefact": "pred-12.png"}) gets an `href` to draw it (the index PNG coloured with
the class colours, background clear), and `prediction["artefacts"]` (name by role) gets
`artefact_urls` with the raw files.
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
from app.services.image_files import FileAnswer, is_background_name
from app.storage import Storage

BACKGROUND = -1
RESULT_SORTS = ("error", "-error", "confidence", "-confidence", "loss", "-loss", "image", "cell")
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
    if sort == "cell":
        # The largest match score among the image's matches in the chosen cell (all its
        # matches when no cell is chosen).
        top = (
            select(
                col(EvaluationMatch.image_id).label("image_id"),
                func.max(EvaluationMatch.score).label("top"),
            )
            .where(EvaluationMatch.evaluation_id == eid, *cell)
            .group_by(col(EvaluationMatch.image_id))
            .subquery()
        )
        query = query.outerjoin(top, top.c.image_id == col(EvaluationResult.image_id))
        key: tuple[Any, ...] = (top.c.top.desc().nulls_last(), col(EvaluationResult.id))
    else:
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
    links = _Links(project_id, evaluation)
    return [links.read(result, name, w, h) for result, name, w, h in rows], total


class _Links:
    """Result rows as read models, with URLs for their artefact-backed shapes."""

    def __init__(self, project_id: int, evaluation: Evaluation) -> None:
        self.project_id = project_id
        self.experiment_id = evaluation.experiment_id
        classes = (evaluation.aggregate or {}).get("classes", [])
        # Overlays leave background classes clear, like the dataset viewer's masks.
        self.hidden = ",".join(str(i) for i, c in enumerate(classes) if is_background_name(c))

    def url(self, name: str) -> str:
        return artefact_url(self.project_id, self.experiment_id, name)

    def prediction(self, prediction: dict[str, Any]) -> dict[str, Any]:
        out = dict(prediction)
        for key in ("truth", "predicted"):
            if key not in prediction:
                continue
            entries = []
            for entry in prediction.get(key) or []:
                geometry = entry.get("geometry") if isinstance(entry, dict) else None
                name = geometry.get("artefact") if isinstance(geometry, dict) else None
                if isinstance(name, str):  # a class mask: background classes left clear
                    entry = {**entry, "href": f"{self.url(name)}?hide={self.hidden}"}
                elif isinstance(entry, dict) and isinstance(entry.get("artefact"), str):
                    # a map the evaluation wrote (an anomaly heatmap), drawn like a mask
                    entry = {**entry, "href": self.url(entry["artefact"])}
                entries.append(entry)
            out[key] = entries
        artefacts = prediction.get("artefacts")
        if isinstance(artefacts, dict):
            out["artefact_urls"] = {
                k: self.url(v) for k, v in artefacts.items() if isinstance(v, str)
            }
        return out

    def read(
        self, result: EvaluationResult, name: str, width: int, height: int
    ) -> EvaluationResultRead:
        project_id = self.project_id
        return EvaluationResultRead(
            id=result.id,  # type: ignore[arg-type]
            image_id=result.image_id,
            original_name=name,
            width=width,
            height=height,
            subset=result.subset,
            prediction=self.prediction(dict(result.prediction or {})),
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
    return _Links(project_id, evaluation).read(
        result, image.original_name, image.width, image.height
    )


def confusion(
    session: Session, evaluation: Evaluation, *, subset: str | None = None
) -> dict[str, Any]:
    """Counts of (true, predicted) class pairs from the match rows. Rows are true classes,
    columns predicted; a background row/column appears when the task has unmatched objects
    (detection's FP and FN, multi-label's missed and extra labels). `subset` limits it to
    one subset of the evaluation (one it did not cover is refused, naming those it did).

    A task that counts confusions in other units than match rows (pixels) stores its matrix
    in the aggregate (`confusion`: {"unit", "matrix"}, and per subset under `by_subset`); the
    card then shows that matrix, row-normalised, and its cells still open images through the
    match rows."""
    if subset and subset not in evaluation.subsets:
        evaluated = ", ".join(evaluation.subsets) or "none"
        raise Invalid(
            f"subset={subset!r} was not evaluated; evaluated subsets: {evaluated}.",
            code="subset_not_evaluated",
        )
    aggregate = evaluation.aggregate or {}
    classes: list[str] = list(aggregate.get("classes", []))
    own = (aggregate.get("by_subset", {}).get(subset, {}) if subset else aggregate).get("confusion")
    if isinstance(own, dict) and isinstance(own.get("matrix"), list):
        return {
            "labels": classes,
            "indices": list(range(len(classes))),
            "matrix": own["matrix"],
            "background": False,
            "unit": str(own.get("unit", "pixels")),
            "subset": subset,
            "subsets": list(evaluation.subsets),
        }
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
        "unit": "matches",
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


HEX_COLOR = re.compile(r"^#?[0-9A-Fa-f]{6}$")


def artefact_overlay(
    session: Session,
    storage: Storage,
    evaluation: Evaluation,
    name: str,
    *,
    hide: set[int],
    tint: str | None = None,
) -> tuple[bytes, str]:
    """An index-mask artefact (predicted mask, error map) coloured like the dataset's masks:
    the project's class colours by class index, `hide` (class indices) and ignore (255)
    clear, `tint` one colour for every shown class. Returns PNG bytes and an ETag."""
    import numpy as np
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    from app.models import LabelClass
    from app.services.image_files import colorize_mask

    if tint is not None and not HEX_COLOR.match(tint):
        raise Invalid(
            f"tint={tint!r} is not a colour; use six hex digits such as dc2626.",
            code="invalid_tint",
        )
    answer = artefact_file(session, storage, evaluation, name)
    if answer.media_type != "image/png":
        raise Invalid(f"{name!r} is not a PNG mask; only PNG artefacts colour.", code="not_a_mask")
    try:
        with PILImage.open(answer.path) as opened:
            values = np.asarray(opened)
    except (OSError, UnidentifiedImageError, ValueError):
        raise Invalid(f"Artefact {name!r} cannot be decoded.", code="mask_unreadable") from None
    if values.ndim != 2:
        raise Invalid(f"Artefact {name!r} is not an index mask.", code="not_a_mask")
    experiment = session.get(Experiment, evaluation.experiment_id)
    assert experiment is not None
    classes = session.exec(
        select(LabelClass).where(LabelClass.project_id == experiment.project_id)
    ).all()
    order = sorted(classes, key=lambda c: (c.index, c.id or 0))
    colors = {i: ("" if i in hide else c.color) for i, c in enumerate(order)}
    color = f"#{tint.lstrip('#')}" if tint else None
    return colorize_mask(values.astype(np.int64), colors, color)
