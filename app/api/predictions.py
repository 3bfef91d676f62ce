"""Predict API: run uploaded images through an ONNX export (in a worker, not here)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from fastapi.responses import JSONResponse
from sqlmodel import Session

from app.deps import get_session, get_storage
from app.services import predictions as service
from app.services.jobs import read_job
from app.storage import Storage

router = APIRouter(tags=["predict"])


@router.post("/projects/{project_id}/predict", summary="Predict with an exported model")
def predict(
    project_id: int,
    files: list[UploadFile] = File(..., description="One or more images"),
    export_id: int | None = Form(None, description="An ONNX export; default: the project's"),
    score_threshold: float | None = Form(
        None, ge=0, le=1, description="Detectors: keep objects scoring at least this (0-1)"
    ),
    rle: bool = Form(
        False, description="Instance segmentation: also each object's mask as COCO RLE"
    ),
    gate: str = Form(
        "on",
        pattern="^(on|off)$",
        description="Dual-head models: off = class scores even "
        "for images the segmentation gate rejects",
    ),
    wait: float = Query(30.0, ge=0, le=120, description="Seconds to wait for the result"),
    session: Session = Depends(get_session),
    storage: Storage = Depends(get_storage),
) -> Any:
    """The images are predicted together, as one batch, by a `predict` job that the resident
    predictor process runs (a light worker when the predictor is down). Default model: the
    project's newest valid ONNX export. Answers 200 with per-image results in one envelope
    (`ok`, `file`, `task`, `image` {width, height}, plus the task's fields: `top` and `labels`
    for classification (dual-head models add `gate` {passed, foreground_ratio,
    largest_component, reason}, `channels` and a `mask`; a rejected image gets no `labels`
    unless gate=off), `objects` with boxes in original pixels for detection, and with
    polygons (plus COCO RLE masks when `rle` is set) for instance segmentation) or a per-image
    `error`, the model and timing; 422 when no file is a readable image; 202 with the job when
    it takes longer than `wait` seconds (its `result` holds the same answer)."""
    uploads = [
        service.Upload(name=f.filename or f"file{i + 1}", data=f.file.read())
        for i, f in enumerate(files)
    ]
    job, _export = service.submit_prediction(
        session=session,
        storage=storage,
        project_id=project_id,
        export_id=export_id,
        uploads=uploads,
        score_threshold=score_threshold,
        rle=rle,
        gate_mode=gate,
    )
    assert job.id is not None
    finished = service.wait_for_job(session=session, job_id=job.id, timeout=wait)
    if finished.status in ("queued", "running"):
        return JSONResponse(
            status_code=202, content={"job": read_job(finished).model_dump(mode="json")}
        )
    return service.prediction_answer(finished)
