"""Factories: rows made through the services where one exists, with overridable defaults."""

from __future__ import annotations

import itertools
from typing import Any

from sqlmodel import Session

from app.models import Job, JobQueue, Project, ProjectCreate
from app.services import jobs as job_service
from app.services import projects as project_service

_counter = itertools.count(1)


def make_project(session: Session, **overrides: Any) -> Project:
    data = {"name": f"Project {next(_counter)}", "task_type": "classification"}
    data.update(overrides)
    return project_service.create_project(session=session, data=ProjectCreate(**data))


def make_job(session: Session, kind: str = "test.count", **overrides: Any) -> Job:
    overrides.setdefault("queue", JobQueue.compute)
    return job_service.submit_job(session, kind=kind, **overrides)
