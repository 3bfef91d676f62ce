"""Exports API: export a checkpoint as ONNX / INT8 ONNX / TorchScript, list, get, download."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response
from fastapi.responses import FileResponse, JSONResponse
from sqlmodel import Session

from app.deps import get_session, get_storage
from app.models import ExportCreate, ExportRead, Page
from app.services import exports as service
from app.services.jobs import read_job
from app.storage import Storage

router = APIRouter(tags=["exports"])
BASE = "/projects/{project_id}/experiments/{experiment_id}/exports"


@router.post(BASE, status_code=202, summary="Export a checkpoint (runs as a job)")
def create_export(
    project_id: int,
    experiment_id: int,
    data: ExportCreate,
    session: Session = Depends(get_session),
) -> dict[str, Any]:
    """Formats: onnx (fp32, opset 13-20, default 17), onnx_int8 (dynamic quantization),
    torchscript (trace). Answers 202 with the job and the export record; when the job ends the
    record carries `valid`, its parity report (`validation`) and `metadata`."""
    job, export = service.submit_export(
        session=session, project_id=project_id, experiment_id=experiment_id, data=data
    )
    return {
        "job": read_job(job).model_dump(mode="json"),
        "export": service.read_export(session=session, export=export, project_id=project_id),
    }


@router.get(BASE, response_model=Page[ExportRead], summary="List an experiment's exports")
def list_exports(
    project_id: int, experiment_id: int, session: Session = Depends(get_session)
) -> Page[ExportRead]:
    rows = service.list_exports(session=session, project_id=project_id, experiment_id=experiment_id)
    items = [service.read_export(session=session, export=r, project_id=project_id) for r in rows]
    return Page(items=items, total=len(items), page=1, page_size=max(1, len(items)))


@router.get(BASE + "/{export_id}", response_model=ExportRead, summary="Get an export")
def get_export(
    project_id: int, experiment_id: int, export_id: int, session: Session = Depends(get_session)
) -> ExportRead:
    export = service.get_export(
        session=session, project_id=project_id, export_id=export_id, experiment_id=experiment_id
    )
    return service.read_export(session=session, export=export, project_id=project_id)


@router.get(
    BASE + "/{export_id}/download",
    response_class=FileResponse,
    summary="Download the exported model file",
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def download_export(
    project_id: int,
    experiment_id: int,
    export_id: int,
    session: Session = Depends(get_session),
    storage: Storage = Depends(get_storage),
) -> FileResponse:
    """`curl -OJ` saves it under its safe name (Content-Disposition: attachment)."""
    export = service.get_export(
        session=session, project_id=project_id, export_id=export_id, experiment_id=experiment_id
    )
    path = service.export_path(session=session, storage=storage, export=export)
    return FileResponse(
        path,
        media_type="application/octet-stream",
        filename=service.file_name(session, export),
    )


@router.get(BASE + "/{export_id}/metadata.json", summary="Download the export's metadata file")
def download_metadata(
    project_id: int, experiment_id: int, export_id: int, session: Session = Depends(get_session)
) -> JSONResponse:
    """The preprocessing, classes and output decoding a deployment needs (the same JSON is
    inside an ONNX file's metadata_props as "studio.metadata")."""
    export = service.get_export(
        session=session, project_id=project_id, export_id=export_id, experiment_id=experiment_id
    )
    name = service.file_name(session, export).rsplit(".", 1)[0] + ".json"
    return JSONResponse(
        export.meta or {}, headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


@router.delete(BASE + "/{export_id}", status_code=204, summary="Delete an export and its file")
def delete_export(
    project_id: int,
    experiment_id: int,
    export_id: int,
    session: Session = Depends(get_session),
    storage: Storage = Depends(get_storage),
) -> Response:
    service.delete_export(
        session=session,
        storage=storage,
        project_id=project_id,
        experiment_id=experiment_id,
        export_id=export_id,
    )
    return Response(status_code=204)
