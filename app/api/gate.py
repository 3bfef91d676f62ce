"""The segmentation gate of a dual-head experiment: rules, calibration, pass and rejection
rates; edit the rules; run a gate test set of out-of-domain images."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, File, UploadFile
from fastapi.responses import JSONResponse
from sqlmodel import Session

from app.deps import get_session, get_storage
from app.services import gate as service
from app.services.jobs import read_job
from app.storage import Storage

router = APIRouter(tags=["experiments"])
BASE = "/projects/{project_id}/experiments/{experiment_id}/gate"


@router.get(BASE, summary="The segmentation gate: rules, calibration, pass/rejection rates")
def get_gate(
    project_id: int, experiment_id: int, session: Session = Depends(get_session)
) -> dict[str, Any]:
    """`rules` in use (edited over calibrated), `calibration.per_class` (5th/25th/50th
    percentile of the foreground ratio per class), `in_domain` (pass rate per class on the
    evaluated test images), `out_of_domain` (rejection rate of the last gate test set).
    409 `no_gate` for a model without a segmentation head."""
    return service.read_gate(session, project_id=project_id, experiment_id=experiment_id)


@router.patch(BASE, summary="Edit the gate's rules")
def patch_gate(
    project_id: int,
    experiment_id: int,
    data: dict[str, Any] = Body(
        ..., examples=[{"default_min_ratio": 0.1, "min_ratio": {"smut": 0.05}}]
    ),
    session: Session = Depends(get_session),
) -> dict[str, Any]:
    """Fields: default_min_ratio (0-1), min_ratio {class: 0-1}, min_component_px (at
    reference_side px), reference_side, min_calibration_images. Predictions use them at once;
    exports from their next export."""
    return service.patch_gate(
        session, project_id=project_id, experiment_id=experiment_id, data=data
    )


@router.post(BASE + "/test-set", summary="Measure out-of-domain rejection on uploaded images")
def post_test_set(
    project_id: int,
    experiment_id: int,
    files: list[UploadFile] = File(..., description="Images, or zip archives of images"),
    session: Session = Depends(get_session),
    storage: Storage = Depends(get_storage),
) -> Any:
    """202 with a `gate_test` job; its result (also under `out_of_domain` of GET .../gate):
    rejection_rate, images, rejected, per-image verdicts, and per-file errors for what is not
    a readable image."""
    uploads = [(f.filename or f"file{i + 1}", f.file.read()) for i, f in enumerate(files)]
    job = service.submit_test_set(
        session, storage, project_id=project_id, experiment_id=experiment_id, uploads=uploads
    )
    return JSONResponse(status_code=202, content={"job": read_job(job).model_dump(mode="json")})
