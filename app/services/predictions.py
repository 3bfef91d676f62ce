"""Predictions: images in, classes and scores out, computed by a `predict` job on the predict
queue, which the resident predictor process (workers/predictor.py, model cache) claims within
tens of milliseconds; onnxruntime never loads in the web process. The caller polls the job
every 20 ms up to a timeout; past it, the answer is the job to poll."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import time
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from app.errors import BadRequest, Conflict, Invalid, TooLarge
from app.models import Export, Job, JobQueue, JobStatus
from app.services import decisions
from app.services import exports as export_service
from app.services.jobs import submit_job
from app.storage import Storage, atomic_write_bytes

MAX_FILES = 64
MAX_FILE_BYTES = 20 * 1024 * 1024
TOP_K = 5


@dataclass
class Upload:
    name: str
    data: bytes
    content_type: str = ""


def resolve_export(*, session: Session, project_id: int, export_id: int | None) -> Export:
    if export_id is None:
        return export_service.default_export(session=session, project_id=project_id)
    export = export_service.get_export(session=session, project_id=project_id, export_id=export_id)
    if export.format not in export_service.ONNX_FORMATS:
        raise Conflict(
            f"Export {export_id} is {export.format}; prediction runs ONNX exports "
            f"({', '.join(export_service.ONNX_FORMATS)}).",
            code="export_not_onnx",
        )
    if export.status != export_service.ExportStatus.completed:
        raise Conflict(
            f"Export {export_id} is {export.status}; wait until it has completed.",
            code="export_not_ready",
        )
    return export


def submit_prediction(
    *,
    session: Session,
    storage: Storage,
    project_id: int,
    export_id: int | None,
    uploads: list[Upload],
    score_threshold: float | None = None,
    rle: bool = False,
    gate_mode: str = "on",
) -> tuple[Job, Export]:
    """Store the uploads under the job's folder and queue the job in one commit.
    `score_threshold` overrides a detector's own threshold for this request; `rle` asks
    mask-producing tasks for each object's mask as COCO RLE besides its polygon."""
    if not uploads:
        raise BadRequest("Send one or more images as multipart `files`.", code="no_files")
    if len(uploads) > MAX_FILES:
        raise TooLarge(
            f"{len(uploads)} files sent; send at most {MAX_FILES} per request.",
            code="too_many_files",
        )
    for upload in uploads:
        if len(upload.data) > MAX_FILE_BYTES:
            raise TooLarge(
                f"{upload.name!r} is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB.",
                code="file_too_large",
            )
    export = resolve_export(session=session, project_id=project_id, export_id=export_id)
    job = submit_job(
        session,
        kind="predict",
        queue=JobQueue.predict,
        project_id=project_id,
        target=f"export:{export.id}",
        title=f"Predict {len(uploads)} image(s)",
        commit=False,
    )
    assert job.id is not None
    files = store_inputs(storage, job.id, [(u.name, u.data) for u in uploads])
    # Decision settings changed since the export (a threshold) apply to predictions at once.
    options: dict[str, Any] = {
        **decisions.decision_for_experiment(session, export.experiment_id),
        "top_k": TOP_K,
        "gate_mode": gate_mode,
    }
    if score_threshold is not None:
        if not 0 <= score_threshold <= 1:
            raise Invalid(
                f"score_threshold={score_threshold} is invalid; use 0-1.",
                code="invalid_score_threshold",
            )
        options["score_threshold"] = float(score_threshold)
    if rle:
        options["rle"] = True
    job.params = {"export_id": export.id, "files": files, "options": options}
    session.add(job)
    session.commit()
    session.refresh(job)
    wake_predictor(storage)
    return job, export


def store_inputs(
    storage: Storage, job_id: int, uploads: list[tuple[str, bytes]]
) -> list[dict[str, str]]:
    """Uploaded files under the job's `inputs/` folder (random names; the given name kept
    for the answer), as the job's `files` parameter lists them."""
    folder = storage.job_dir(job_id) / "inputs"
    files = []
    for name, data in uploads:
        stored = storage.new_name("")
        atomic_write_bytes(folder / stored, data)
        files.append({"stored": f"inputs/{stored}", "name": name[:300]})
    return files


def wake_predictor(storage: Storage) -> bool:
    """Tell a waiting resident predictor that a job is queued: one byte into its named pipe,
    never blocking. False when there is no predictor listening (it then finds the job by its
    idle poll, or the pool's fallback runs it)."""
    path = storage.predictor_wake_path
    try:
        if not stat.S_ISFIFO(path.stat().st_mode):
            return False
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:  # no pipe, or ENXIO: nobody has it open for reading
        return False
    try:
        os.write(fd, b"\x01")
    except OSError as exc:
        if exc.errno != errno.EAGAIN:  # a full pipe has wake-ups enough
            return False
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
    return True


def wait_for_job(*, session: Session, job_id: int, timeout: float, interval: float = 0.02) -> Job:
    deadline = time.monotonic() + timeout
    while True:
        session.expire_all()
        job = session.get(Job, job_id)
        assert job is not None
        if job.status in {s.value for s in JobStatus if s.terminal} or time.monotonic() > deadline:
            return job
        time.sleep(interval)


def prediction_answer(job: Job) -> dict[str, Any]:
    """The finished job as the API's answer; errors become StudioErrors, never a 500."""
    failure = (job.result or {}).get("error") or {}
    if job.status == JobStatus.failed.value and failure.get("code") == "no_valid_images":
        raise Invalid(
            str(failure.get("message") or job.message),
            code="no_valid_images",
            details=dict(failure.get("details") or {}),
        )
    if job.status != JobStatus.succeeded.value:
        raise Conflict(
            f"Prediction job {job.id} {job.status}: {job.error or job.message}",
            code="prediction_failed",
            details={"job_id": job.id, "status": job.status},
        )
    result = dict(job.result or {})
    items = result.get("results", [])
    if items and not any(item.get("ok") for item in items):
        raise Invalid(
            f"None of the {len(items)} file(s) is a readable image; send PNG, JPEG, BMP, "
            "GIF, TIFF or WebP files.",
            code="no_valid_images",
            details={"results": items},
        )
    return {"job_id": job.id, **result}
