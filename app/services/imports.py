"""Imports: create one from an upload, a server folder or a built-in sample; analyze a
source without writing anything; list and read imports. The job (workers/importing.py)
does the work."""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import BaseModel, StrictBool
from sqlmodel import Session, col, func, select

from app.config import Settings
from app.errors import BadRequest, Conflict, Invalid, NotFound, TooLarge, not_found
from app.importers import list_importers
from app.importers.archive import extract_zip, single_root
from app.models import TERMINAL_STATUSES, DatasetImport, Job, JobQueue, Project
from app.services import jobs as job_service
from app.services.import_analysis import Analysis, analyze
from app.services.projects import get_project
from app.storage import Storage, UnsafePath, read_json
from app.tasks import get_task, list_tasks

# Class colours by index: distinct, readable on light and dark images.
PALETTE = (
    "#e6194b",
    "#3cb44b",
    "#4363d8",
    "#f58231",
    "#911eb4",
    "#42d4f4",
    "#f032e6",
    "#bfef45",
    "#fabed4",
    "#469990",
    "#dcbeff",
    "#9a6324",
    "#fffac8",
    "#800000",
    "#aaffc3",
    "#808000",
    "#ffd8b1",
    "#000075",
    "#a9a9a9",
    "#ffe119",
)
# Built-in sample datasets, as each task's data half declares them (name -> description).
SAMPLES = {name: title for spec in list_tasks() for name, title in spec.samples.items()}
SAMPLE_TASKS = {name: spec.key for spec in list_tasks() for name in spec.samples}


def samples_for(task: str) -> dict[str, str]:
    """The built-in samples a project of this task type can import."""
    return dict(get_task(task).samples)


CHUNK = 1024 * 1024
log = logging.getLogger("app.imports")


class ImportRead(BaseModel):
    id: int
    project_id: int
    job_id: int | None
    source: str
    format: str | None
    status: str
    counts: dict[str, Any]
    warnings: list[Any]
    errors: list[Any]
    created_at: Any
    finished_at: Any | None


class FolderImport(BaseModel):
    path: str
    format: str | None = None
    # Class folders nested coarse/fine/...: the second folder is the class, the first its
    # parent (app.importers.taxonomy.apply_folder_taxonomy). Off: deeper folders are the
    # `folder` attribute.
    taxonomy_from_folders: StrictBool = False


def form_flag(name: str, value: object) -> bool:
    """A multipart field as a switch: a checkbox sends "on", scripts "true"/"false"."""
    text = value.strip().lower() if isinstance(value, str) else ""
    if text in {"", "false", "0", "off", "no"}:
        return False
    if text in {"true", "1", "on", "yes"}:
        return True
    raise Invalid(
        f"{name} must be true or false (got {str(value)[:40]!r}).",
        code="invalid_option",
        details={"field": name},
    )


def read_import(row: DatasetImport) -> ImportRead:
    return ImportRead.model_validate(row, from_attributes=True)


def parse_source(source: str) -> tuple[str, str]:
    kind, _, value = source.partition(":")
    return kind, value


def work_dir(storage: Storage, project_id: int, import_id: int) -> Path:
    return storage.staging_dir(project_id) / f"import-{int(import_id)}"


def moves_manifest(storage: Storage, project_id: int, import_id: int) -> Path:
    """The files an import is moving into the project, written before the first move."""
    return work_dir(storage, project_id, import_id) / "moves.json"


def _roll_back_moves(storage: Storage, project_id: int, import_id: int) -> int:
    """Remove the files an import moved into the project before dying uncommitted."""
    manifest = moves_manifest(storage, project_id, import_id)
    try:
        moved = read_json(manifest)
    except (OSError, ValueError):
        return 0
    removed = 0
    for relative in moved if isinstance(moved, list) else []:
        try:
            path = storage.resolve(str(relative))
        except UnsafePath:
            continue
        if path.is_file():
            path.unlink()
            removed += 1
    return removed


def _check_format(fmt: str | None, task_type: str) -> str | None:
    if not fmt:
        return None
    valid = [i.key for i in list_importers() if task_type in i.tasks]
    if fmt not in valid:
        raise Invalid(
            f"format={fmt!r} is not available for {task_type} projects; use one of: "
            f"{', '.join(valid)} (or leave it empty to detect it).",
            code="unknown_format",
            details={"valid": valid},
        )
    return fmt


def resolve_folder(settings: Settings, path: str) -> Path:
    """A server folder, accepted only below one of STUDIO_IMPORT_ROOTS (links resolved)."""
    return resolve_below_roots(settings, path, folder=True)


def resolve_below_roots(settings: Settings, path: str, *, folder: bool) -> Path:
    """A server folder (or file), accepted only below one of STUDIO_IMPORT_ROOTS (links
    resolved) and never the studio's own workspace."""
    what = "folder" if folder else "file"
    if not settings.import_roots:
        raise BadRequest(
            "Server-side imports are off: set STUDIO_IMPORT_ROOTS to the folders imports may "
            "read, or upload instead.",
            code="import_roots_unset",
        )
    if not path or "\x00" in path:
        raise BadRequest(f"path must be a {what} below an import root.", code="bad_path")
    candidate = Path(path)
    workspace = settings.workspace_dir
    for root in settings.import_roots:
        target = candidate if candidate.is_absolute() else root / candidate
        resolved = target.resolve()
        exists = resolved.is_dir() if folder else resolved.is_file()
        if resolved.is_relative_to(root) and exists:
            if resolved.is_relative_to(workspace) or workspace.is_relative_to(resolved):
                # Importing the studio's own files would copy every project's images.
                raise BadRequest(
                    f"path {path!r} is or contains the studio's workspace; use a {what} "
                    "outside it.",
                    code="path_in_workspace",
                )
            return resolved
    roots = ", ".join(str(r) for r in settings.import_roots)
    raise BadRequest(
        f"path {path!r} is not an existing {what} below an import root ({roots}).",
        code="path_not_allowed",
        details={"import_roots": [str(r) for r in settings.import_roots]},
    )


def _submit(
    session: Session,
    *,
    project: Project,
    source: str,
    fmt: str | None,
    title: str,
    taxonomy_from_folders: bool = False,
) -> tuple[Job, DatasetImport]:
    row = DatasetImport(project_id=project.id, source=source[:2000], format=fmt)  # type: ignore[arg-type]
    session.add(row)
    session.flush()
    job = job_service.submit_job_for(
        session,
        row,
        kind="import",
        queue=JobQueue.light,
        project_id=project.id,
        target=f"import:{row.id}",
        title=title,
        params={"import_id": row.id}
        | ({"taxonomy_from_folders": True} if taxonomy_from_folders else {}),
    )
    return job, row


def start_folder_import(
    session: Session, *, settings: Settings, project_id: int, data: FolderImport
) -> tuple[Job, DatasetImport]:
    project = get_project(session=session, project_id=project_id)
    fmt = _check_format(data.format, project.task_type)
    folder = resolve_folder(settings, data.path)
    return _submit(
        session,
        project=project,
        source=f"folder:{folder}",
        fmt=fmt,
        title=f"Import {folder.name}",
        taxonomy_from_folders=data.taxonomy_from_folders,
    )


def save_upload(storage: Storage, target: Path, stream: BinaryIO, limit: int) -> int:
    """Stream an upload to disk with a byte counter; nothing is kept if it is too large."""
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    try:
        with target.open("wb") as out:
            while chunk := stream.read(CHUNK):
                written += len(chunk)
                if written > limit:
                    raise TooLarge(
                        f"The upload is larger than the {limit // (1024 * 1024)} MB limit "
                        "(STUDIO_MAX_UPLOAD_MB).",
                        code="upload_too_large",
                    )
                out.write(chunk)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return written


def start_upload_import(
    session: Session,
    *,
    settings: Settings,
    storage: Storage,
    project_id: int,
    filename: str,
    stream: BinaryIO,
    fmt: str | None,
    taxonomy_from_folders: bool = False,
) -> tuple[Job, DatasetImport]:
    project = get_project(session=session, project_id=project_id)
    assert project.id is not None
    fmt = _check_format(fmt, project.task_type)
    if not filename.lower().endswith(".zip"):
        from app.errors import UnsupportedMedia

        raise UnsupportedMedia(
            f"{filename!r} is not a .zip file; upload the dataset as a zip archive.",
            code="not_a_zip",
        )
    temp = storage.staging_dir(project.id) / f"upload-{storage.new_name('.zip')}"
    save_upload(storage, temp, stream, settings.max_upload_bytes)
    try:
        job, row = _submit(
            session,
            project=project,
            source=f"upload:{Path(filename).name}",
            fmt=fmt,
            title=f"Import {Path(filename).name}",
            taxonomy_from_folders=taxonomy_from_folders,
        )
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    assert row.id is not None
    work = work_dir(storage, project.id, row.id)
    work.mkdir(parents=True, exist_ok=True)
    temp.rename(work / "upload.zip")
    return job, row


def start_sample_import(
    session: Session, *, project_id: int, sample: str = "digits"
) -> tuple[Job, DatasetImport]:
    project = get_project(session=session, project_id=project_id)
    if sample not in SAMPLES:
        raise NotFound(
            f"Sample {sample!r} does not exist; use one of: {', '.join(SAMPLES)}.",
            code="sample_not_found",
        )
    if project.task_type != SAMPLE_TASKS[sample]:
        raise Invalid(
            f"The {sample} sample is a {SAMPLE_TASKS[sample]} dataset; this project is "
            f"{project.task_type}.",
            code="sample_task_mismatch",
        )
    earlier = session.exec(
        select(DatasetImport).where(
            DatasetImport.project_id == project.id,
            DatasetImport.source == f"sample:{sample}",
            col(DatasetImport.status).not_in(("failed", "cancelled", "interrupted")),
        )
    ).first()
    if earlier is not None:
        # A second copy would only add 1,797 exact duplicates (a double click does it too).
        raise Conflict(
            f"The {sample} sample is already in this project (import {earlier.id}, "
            f"{earlier.status}); importing it again would duplicate every image. Create a new "
            "project to start over.",
            code="sample_already_imported",
            details={"import_id": earlier.id},
        )
    return _submit(
        session,
        project=project,
        source=f"sample:{sample}",
        fmt="folders",
        title="Import the digits sample",
    )


def reconcile(
    session: Session, row: DatasetImport, storage: Storage | None = None
) -> DatasetImport:
    """An import whose job ended without it (cancelled while queued, worker killed) takes the
    job's final status, and its staging folder (an uploaded zip) is removed."""
    if row.status not in {"queued", "running"} or row.job_id is None:
        return row
    job = session.get(Job, row.job_id)
    if job is None or job.status not in TERMINAL_STATUSES:
        return row
    # The row is still open, so the import's commit never happened: whatever it had moved
    # into the project has no rows and goes (the commit and the row's status are one step).
    # Files first, then the status: an import shown as closed has nothing left behind (the
    # removal is idempotent, so a reconciler that dies in between is finished by the next).
    if storage is not None and row.id is not None:
        removed = _roll_back_moves(storage, row.project_id, row.id)
        if removed:
            log.warning("import %s died before its commit; removed %d moved files", row.id, removed)
        shutil.rmtree(work_dir(storage, row.project_id, row.id), ignore_errors=True)
    row.status = "succeeded" if job.status == "succeeded" else job.status
    row.errors = [{"file": "", "message": job.error or job.message or job.status}, *row.errors]
    row.finished_at = job.finished_at
    session.add(row)
    session.commit()
    session.refresh(row)
    return row


def recover_abandoned(session: Session, storage: Storage) -> int:
    """Close imports whose job ended without them (worker killed) and remove the files
    they left behind; the worker pool runs this at start-up and after each worker exits."""
    rows = session.exec(
        select(DatasetImport).where(col(DatasetImport.status).in_(("queued", "running")))
    ).all()
    closed = 0
    for row in rows:
        if reconcile(session, row, storage).status not in {"queued", "running"}:
            closed += 1
    return closed


def list_imports(
    session: Session,
    *,
    project_id: int,
    page: int = 1,
    page_size: int = 50,
    storage: Storage | None = None,
) -> tuple[list[DatasetImport], int]:
    get_project(session=session, project_id=project_id)
    where = DatasetImport.project_id == project_id
    total = session.exec(select(func.count()).select_from(DatasetImport).where(where)).one()
    rows = session.exec(
        select(DatasetImport)
        .where(where)
        .order_by(col(DatasetImport.id).desc())
        .offset((page - 1) * page_size)
        .limit(page_size)
    ).all()
    return [reconcile(session, r, storage) for r in rows], int(total)


def get_import(
    session: Session, *, project_id: int, import_id: int, storage: Storage | None = None
) -> DatasetImport:
    row = session.get(DatasetImport, import_id)
    if row is None or row.project_id != project_id:
        raise not_found("import", import_id)
    return reconcile(session, row, storage)


def analyze_folder(
    session: Session, *, settings: Settings, project_id: int, data: FolderImport
) -> Analysis:
    project = get_project(session=session, project_id=project_id)
    fmt = _check_format(data.format, project.task_type)
    return analyze(
        resolve_folder(settings, data.path),
        project.task_type,
        fmt,
        taxonomy_from_folders=data.taxonomy_from_folders,
    )


def analyze_upload(
    session: Session,
    *,
    settings: Settings,
    storage: Storage,
    project_id: int,
    stream: BinaryIO,
    fmt: str | None,
    taxonomy_from_folders: bool = False,
) -> Analysis:
    """Extract into a throw-away staging folder, analyze, delete; nothing else is written."""
    project = get_project(session=session, project_id=project_id)
    assert project.id is not None
    fmt = _check_format(fmt, project.task_type)
    staging = storage.staging_dir(project.id)
    staging.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="analyze-", dir=staging))
    try:
        save_upload(storage, folder / "upload.zip", stream, settings.max_upload_bytes)
        skipped: list[dict[str, str]] = []
        extract_zip(folder / "upload.zip", folder / "src", skipped=skipped)
        analysis = analyze(
            single_root(folder / "src"),
            project.task_type,
            fmt,
            taxonomy_from_folders=taxonomy_from_folders,
        )
        analysis.warnings = [*skipped, *analysis.warnings][:200]
        return analysis
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True)
class ImportSource:
    """What the API (JSON or multipart) and the import dialog (form) both hand over: a server
    folder or an uploaded zip stream, an optional format override and (uploads; a folder
    carries its own) the nested-folder taxonomy option."""

    folder: FolderImport | None = None
    stream: BinaryIO | None = None
    filename: str = "upload.zip"
    fmt: str | None = None
    taxonomy_from_folders: bool = False


def start_import(
    session: Session, *, settings: Settings, storage: Storage, project_id: int, source: ImportSource
) -> tuple[Job, DatasetImport]:
    if source.folder is not None:
        return start_folder_import(
            session, settings=settings, project_id=project_id, data=source.folder
        )
    assert source.stream is not None
    return start_upload_import(
        session,
        settings=settings,
        storage=storage,
        project_id=project_id,
        filename=source.filename,
        stream=source.stream,
        fmt=source.fmt,
        taxonomy_from_folders=source.taxonomy_from_folders,
    )


def analyze_source(
    session: Session, *, settings: Settings, storage: Storage, project_id: int, source: ImportSource
) -> Analysis:
    if source.folder is not None:
        return analyze_folder(session, settings=settings, project_id=project_id, data=source.folder)
    assert source.stream is not None
    return analyze_upload(
        session,
        settings=settings,
        storage=storage,
        project_id=project_id,
        stream=source.stream,
        fmt=source.fmt,
        taxonomy_from_folders=source.taxonomy_from_folders,
    )


def formats_for(task_type: str) -> list[tuple[str, str]]:
    return [(i.key, i.title) for i in list_importers() if task_type in i.tasks]
