"""Exports: submit an export job for an experiment's checkpoint, list, read, download, delete.

The export itself (torch, onnx) runs in a worker (workers/handlers/export.py); this module
only validates requests, keeps Export rows and knows where their files live."""

from __future__ import annotations

import re
from pathlib import Path

from sqlmodel import Session, col, select

from app.db import utcnow
from app.errors import Conflict, Invalid, NotFound, not_found
from app.models import Experiment, Export, ExportCreate, ExportRead, Job, Project
from app.services.jobs import submit_job_for
from app.storage import Storage
from app.tasks import get_task

# Mirrors workers/ml/export/spec.py (the web process must not import workers): format → suffix.
FORMATS: dict[str, str] = {"onnx": ".onnx", "onnx_int8": ".onnx", "torchscript": ".pt"}
FORMAT_TITLES = {
    "onnx": "ONNX (fp32)",
    "onnx_int8": "ONNX INT8 (dynamic quantization)",
    "torchscript": "TorchScript (trace)",
}
ONNX_FORMATS = ("onnx", "onnx_int8")
DEFAULT_OPSET = 17
OPSETS = range(13, 21)


class ExportStatus:
    """queued → running → completed | failed | cancelled. `completed` says the file exists;
    whether it may be trusted is `valid` (the parity report's verdict)."""

    queued, running, completed, failed, cancelled = (
        "queued",
        "running",
        "completed",
        "failed",
        "cancelled",
    )
    active = ("queued", "running")


def get_experiment(*, session: Session, project_id: int, experiment_id: int) -> Experiment:
    experiment = session.get(Experiment, experiment_id)
    if experiment is None or experiment.project_id != project_id:
        raise not_found("experiment", experiment_id)
    return experiment


def submit_export(
    *, session: Session, project_id: int, experiment_id: int, data: ExportCreate
) -> tuple[Job, Export]:
    """Validate the request and queue an export job; the row starts as `queued`."""
    experiment = get_experiment(session=session, project_id=project_id, experiment_id=experiment_id)
    project = session.get(Project, project_id)
    assert project is not None
    task = get_task(project.task_type)
    if not task.supports("export"):
        raise Conflict(
            f"Export is not available for {task.title} projects yet.",
            code="export_unsupported",
            details={"task_type": project.task_type},
        )
    if data.format not in FORMATS:
        raise Invalid(
            f"format={data.format!r} is not an export format; use one of: {', '.join(FORMATS)}.",
            code="invalid_format",
            details={"valid": list(FORMATS)},
        )
    opset = data.opset if data.opset is not None else DEFAULT_OPSET
    if opset not in OPSETS:
        raise Invalid(
            f"opset={opset} is not supported; use {OPSETS.start}-{OPSETS.stop - 1} "
            f"(default {DEFAULT_OPSET}).",
            code="invalid_opset",
            details={"min": OPSETS.start, "max": OPSETS.stop - 1},
        )
    checkpoints = experiment.checkpoints or {}
    if data.checkpoint not in checkpoints:
        raise Conflict(
            f"Experiment {experiment_id} has no {data.checkpoint!r} checkpoint; available: "
            f"{', '.join(sorted(checkpoints)) or 'none (train it first)'}.",
            code="checkpoint_missing",
            details={"available": sorted(checkpoints)},
        )
    options = {"opset": opset} if data.format in ONNX_FORMATS else {}
    export = Export(
        experiment_id=experiment_id,
        checkpoint=data.checkpoint,
        format=data.format,
        options=options,
        status=ExportStatus.queued,
    )
    session.add(export)
    session.flush()
    job = submit_job_for(
        session,
        export,
        kind="export",
        project_id=project_id,
        target=f"export:{export.id}",
        title=f"Export {experiment.name} ({data.checkpoint}) as {FORMAT_TITLES[data.format]}",
        params={"export_id": export.id, "experiment_id": experiment_id},
    )
    return job, export


def _sync(session: Session, export: Export) -> Export:
    """A worker killed before it could write the row leaves it `running`: take the job's end."""
    if export.status not in ExportStatus.active or export.job_id is None:
        return export
    job = session.get(Job, export.job_id)
    if job is None or job.status in ("queued", "running", "succeeded"):
        return export
    export.status = ExportStatus.cancelled if job.status == "cancelled" else ExportStatus.failed
    export.valid = False
    export.validation = {**(export.validation or {}), "error": job.error or job.message}
    export.finished_at = export.finished_at or utcnow()
    session.add(export)
    session.commit()
    session.refresh(export)
    return export


def list_exports(
    *, session: Session, project_id: int, experiment_id: int | None = None
) -> list[Export]:
    """Newest first; one experiment's, or the whole project's."""
    query = select(Export).join(Experiment).where(Experiment.project_id == project_id)
    if experiment_id is not None:
        get_experiment(session=session, project_id=project_id, experiment_id=experiment_id)
        query = query.where(Export.experiment_id == experiment_id)
    rows = session.exec(query.order_by(col(Export.id).desc())).all()
    return [_sync(session, row) for row in rows]


def get_export(
    *, session: Session, project_id: int, export_id: int, experiment_id: int | None = None
) -> Export:
    export = session.get(Export, export_id)
    if export is None:
        raise not_found("export", export_id)
    experiment = session.get(Experiment, export.experiment_id)
    if experiment is None or experiment.project_id != project_id:
        raise not_found("export", export_id)
    if experiment_id is not None and export.experiment_id != experiment_id:
        raise not_found("export", export_id)
    return _sync(session, export)


def file_name(session: Session, export: Export) -> str:
    """A download name built from names the user chose, reduced to safe characters."""
    experiment = session.get(Experiment, export.experiment_id)
    stem = f"{experiment.name if experiment else 'model'}-{export.checkpoint}-{export.format}"
    safe = re.sub(r"[^A-Za-z0-9._]+", "-", stem.replace("-", " ")).strip("-.") or "model"
    return f"{safe[:120]}{FORMATS.get(export.format, '.bin')}"


def read_export(*, session: Session, export: Export, project_id: int) -> ExportRead:
    assert export.id is not None
    ready = export.status == ExportStatus.completed and export.path is not None
    return ExportRead(
        id=export.id,
        experiment_id=export.experiment_id,
        project_id=project_id,
        checkpoint=export.checkpoint,
        format=export.format,
        options=export.options or {},
        status=export.status,
        job_id=export.job_id,
        bytes=export.bytes,
        valid=export.valid,
        validation=export.validation or {},
        metadata=export.meta or {},
        file_name=file_name(session, export),
        download_url=(
            f"/api/projects/{project_id}/experiments/{export.experiment_id}/exports/"
            f"{export.id}/download"
            if ready
            else None
        ),
        created_at=export.created_at,
        finished_at=export.finished_at,
    )


def export_path(*, session: Session, storage: Storage, export: Export) -> Path:
    if export.status != ExportStatus.completed or not export.path:
        raise Conflict(
            f"Export {export.id} is {export.status}; only completed exports can be downloaded.",
            code="export_not_ready",
            details={"status": export.status},
        )
    path = storage.resolve(export.path)
    if not path.is_file():
        raise NotFound(f"The file of export {export.id} is missing.", code="export_file_missing")
    return path


def delete_export(
    *, session: Session, storage: Storage, project_id: int, experiment_id: int, export_id: int
) -> None:
    export = get_export(
        session=session, project_id=project_id, export_id=export_id, experiment_id=experiment_id
    )
    if export.status in ExportStatus.active:
        raise Conflict(
            f"Export {export_id} is {export.status}; cancel its job first.",
            code="export_running",
            details={"job_id": export.job_id},
        )
    if export.path:
        path = storage.resolve(export.path)
        path.unlink(missing_ok=True)
        path.with_name(path.name + ".json").unlink(missing_ok=True)  # the metadata sidecar
    session.delete(export)
    session.commit()


def default_export(*, session: Session, project_id: int) -> Export:
    """The project's default model for prediction: its newest valid fp32 ONNX export, else
    its newest valid INT8 one."""
    for fmt in ONNX_FORMATS:
        row = session.exec(
            select(Export)
            .join(Experiment)
            .where(
                Experiment.project_id == project_id,
                Export.format == fmt,
                Export.status == ExportStatus.completed,
                col(Export.valid).is_(True),
            )
            .order_by(col(Export.id).desc())
        ).first()
        if row is not None:
            return row
    raise NotFound(
        f"Project {project_id} has no valid ONNX export to predict with; export a trained "
        "experiment as ONNX first (or pass export_id).",
        code="no_model",
    )


def exportable_experiments(*, session: Session, project_id: int) -> list[Experiment]:
    """The project's experiments that have at least one checkpoint, newest first."""
    rows = session.exec(
        select(Experiment)
        .where(Experiment.project_id == project_id)
        .order_by(col(Experiment.id).desc())
    ).all()
    return [row for row in rows if row.checkpoints]


def predictable_exports(*, session: Session, project_id: int) -> list[Export]:
    """Completed ONNX exports a prediction can use (valid ones first, newest first)."""
    rows = [
        row
        for row in list_exports(session=session, project_id=project_id)
        if row.format in ONNX_FORMATS and row.status == ExportStatus.completed
    ]
    return sorted(rows, key=lambda row: (not row.valid, -(row.id or 0)))


def export_card(*, session: Session, project_id: int, export: Export) -> dict[str, object]:
    """What the Export page shows per export: the read model, its experiment, its job."""
    return {
        "x": read_export(session=session, export=export, project_id=project_id),
        "experiment": session.get(Experiment, export.experiment_id),
        "job": session.get(Job, export.job_id) if export.job_id else None,
        "title": FORMAT_TITLES.get(export.format, export.format),
    }
