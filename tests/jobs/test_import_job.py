"""The import job in a real worker pool: the digits sample end to end, and cancelling."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session, select

from app.config import Settings
from app.models import TERMINAL_STATUSES, DatasetImport, Image, Job
from app.services import imports as import_service
from app.services.events import list_events
from app.services.jobs import cancel_job
from app.storage import Storage
from tests.factories import make_project
from tests.helpers import wait_for
from tests.importers.builders import class_folders
from tests.jobs.conftest import PoolRunner

pytestmark = [pytest.mark.slow]


def job_status(session: Session, job_id: int) -> str:
    session.expire_all()
    job = session.get(Job, job_id)
    assert job is not None
    return job.status


def test_digits_sample_imports_through_the_pool_with_progress(
    session: Session, storage: Storage, pool: PoolRunner
) -> None:
    project = make_project(session)
    job, row = import_service.start_sample_import(session, project_id=project.id)
    wait_for(
        lambda: job_status(session, job.id) in {"succeeded", "failed"},
        timeout=120,
        what="the digits import",
    )
    done = session.get(Job, job.id)
    assert done is not None and done.status == "succeeded", done.error
    assert done.result["images"] == 1797 and done.result["classes"] == 10
    count = len(session.exec(select(Image.id).where(Image.project_id == project.id)).all())
    assert count == 1797
    progress = [e.payload for e in list_events(session, job_id=job.id) if e.type == "progress"]
    assert progress[-1]["done"] == progress[-1]["total"] == 1797
    assert any(p.get("rate") for p in progress) or len(progress) >= 2
    assert session.get(DatasetImport, row.id).status == "succeeded"


def test_cancelling_an_import_leaves_no_rows_or_files(
    session: Session, storage: Storage, pool: PoolRunner
) -> None:
    project = make_project(session)
    job, row = import_service.start_sample_import(session, project_id=project.id)
    wait_for(lambda: job_status(session, job.id) != "queued", timeout=60, what="job start")
    cancel_job(session, job_id=job.id)
    wait_for(
        lambda: job_status(session, job.id) in {"cancelled", "succeeded"}, timeout=60, what="cancel"
    )
    assert job_status(session, job.id) == "cancelled"
    session.expire_all()
    reconciled = import_service.get_import(
        session, project_id=project.id, import_id=row.id, storage=storage
    )
    assert reconciled.status == "cancelled"
    assert session.exec(select(Image).where(Image.project_id == project.id)).all() == []
    assert [p for p in storage.project_dir(project.id).rglob("*") if p.is_file()] == []


def test_cancel_while_the_pool_processes_images_reads_as_cancelled(
    session: Session, storage: Storage, settings: Settings, pool: PoolRunner, tmp_path: Path
) -> None:
    root = tmp_path / "roots"
    class_folders(root / "big", {"a": 1200, "b": 1200})
    configured = settings.model_copy(update={"import_roots": [root.resolve()]})
    project = make_project(session)
    job, row = import_service.start_folder_import(
        session,
        settings=configured,
        project_id=project.id,
        data=import_service.FolderImport(path="big"),
    )

    def processing() -> bool:
        session.expire_all()
        current = session.get(Job, job.id)
        assert current is not None
        detail = current.progress_detail or {}
        if current.status in TERMINAL_STATUSES:
            return True
        return bool(detail.get("done")) and detail.get("unit") == "images"

    wait_for(processing, timeout=120, what="image processing to start")
    assert job_status(session, job.id) == "running", "the import ended before it was cancelled"
    cancel_job(session, job_id=job.id)
    wait_for(lambda: job_status(session, job.id) in TERMINAL_STATUSES, timeout=60, what="cancel")
    assert job_status(session, job.id) == "cancelled"
    session.expire_all()
    assert session.get(DatasetImport, row.id).status == "cancelled"
    assert session.exec(select(Image).where(Image.project_id == project.id)).all() == []
    assert [p for p in storage.project_dir(project.id).rglob("*") if p.is_file()] == []
