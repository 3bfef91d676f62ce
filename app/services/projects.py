"""Projects: create, list with counts, rename/describe, delete with their files."""

from __future__ import annotations

from sqlalchemy import delete, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from app.db import utcnow
from app.errors import Conflict, not_found
from app.models import (
    Experiment,
    Image,
    LabelClass,
    Project,
    ProjectCounts,
    ProjectCreate,
    ProjectRead,
    ProjectUpdate,
    Split,
)
from app.services.jobs import active_jobs, cancel_job
from app.storage import Storage
from app.tasks import get_task


def _name_key(name: str) -> str:
    return name.casefold()


def _ensure_unique_name(session: Session, name: str, *, exclude_id: int | None = None) -> None:
    query = select(Project.id).where(Project.name_key == _name_key(name))
    if exclude_id is not None:
        query = query.where(Project.id != exclude_id)
    if session.exec(query).first() is not None:
        raise Conflict(
            f"A project named {name!r} already exists; choose another name.",
            code="project_exists",
            details={"name": name},
        )


def create_project(*, session: Session, data: ProjectCreate) -> Project:
    task = get_task(data.task_type)
    _ensure_unique_name(session, data.name)
    project = Project(
        name=data.name,
        name_key=_name_key(data.name),
        task_type=task.key,
        description=data.description,
    )
    session.add(project)
    try:
        session.commit()
    except IntegrityError:  # a concurrent create won the race for the name
        session.rollback()
        _ensure_unique_name(session, data.name)
        raise
    session.refresh(project)
    return project


def get_project(*, session: Session, project_id: int) -> Project:
    project = session.get(Project, project_id)
    if project is None:
        raise not_found("project", project_id)
    return project


def project_names(*, session: Session, project_ids: set[int]) -> dict[int, str]:
    """Names for lists that show rows of several projects (the jobs page)."""
    if not project_ids:
        return {}
    rows = session.exec(
        select(Project.id, Project.name).where(col(Project.id).in_(sorted(project_ids)))
    ).all()
    return {pid: name for pid, name in rows if pid is not None}


def _counts(session: Session, project_ids: list[int]) -> dict[int, ProjectCounts]:
    counts = {pid: ProjectCounts() for pid in project_ids}
    if not project_ids:
        return counts
    for model, attr in (
        (Image, "images"),
        (LabelClass, "classes"),
        (Split, "splits"),
        (Experiment, "experiments"),
    ):
        column = col(model.project_id)
        rows = session.exec(
            select(column, func.count()).where(column.in_(project_ids)).group_by(column)
        ).all()
        for pid, n in rows:
            setattr(counts[pid], attr, int(n))
    return counts


def _read(project: Project, counts: ProjectCounts) -> ProjectRead:
    assert project.id is not None
    return ProjectRead(
        id=project.id,
        name=project.name,
        task_type=project.task_type,
        task_title=get_task(project.task_type).title,
        description=project.description,
        created_at=project.created_at,
        updated_at=project.updated_at,
        counts=counts,
    )


def read_project(*, session: Session, project: Project) -> ProjectRead:
    assert project.id is not None
    return _read(project, _counts(session, [project.id])[project.id])


def list_projects(
    *, session: Session, page: int = 1, page_size: int = 100, q: str | None = None
) -> tuple[list[ProjectRead], int]:
    query = select(Project)
    total_query = select(func.count()).select_from(Project)
    if q:
        pattern = f"%{q.casefold()}%"
        query = query.where(col(Project.name_key).like(pattern))
        total_query = total_query.where(col(Project.name_key).like(pattern))
    total = int(session.exec(total_query).one())
    projects = session.exec(
        query.order_by(col(Project.created_at).desc(), col(Project.id).desc())
        .offset((page - 1) * page_size)
        .limit(page_size)
    ).all()
    counts = _counts(session, [p.id for p in projects if p.id is not None])
    return [_read(p, counts[p.id]) for p in projects if p.id is not None], total


def update_project(*, session: Session, project_id: int, data: ProjectUpdate) -> Project:
    project = get_project(session=session, project_id=project_id)
    if data.name is not None and data.name != project.name:
        _ensure_unique_name(session, data.name, exclude_id=project_id)
        project.name = data.name
        project.name_key = _name_key(data.name)
    if data.description is not None:
        project.description = data.description
    project.updated_at = utcnow()
    session.add(project)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict(
            f"A project named {data.name!r} already exists; choose another name.",
            code="project_exists",
        ) from None
    session.refresh(project)
    return project


def delete_project(*, session: Session, storage: Storage, project_id: int) -> None:
    """Delete the rows (the database cascades) and then the project's folder.

    Queued jobs are cancelled; a running job makes this a 409, because its worker is still
    writing into the folder we would remove.
    """
    get_project(session=session, project_id=project_id)
    running = []
    for job in active_jobs(session, project_id=project_id):
        assert job.id is not None
        if job.status == "queued":
            cancel_job(session, job_id=job.id)
            session.refresh(job)
        if job.status == "running":
            running.append(job.id)
    if running:
        raise Conflict(
            "The project has running jobs; cancel them (or wait for them) and delete again.",
            code="project_busy",
            details={"job_ids": running},
        )
    session.execute(delete(Project).where(col(Project.id) == project_id))
    session.commit()
    storage.remove_tree(storage.project_dir(project_id))
