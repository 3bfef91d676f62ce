"""Job and JobEvent: the queue the worker pool drains, and the event log clients stream."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.models.common import created_at_field, json_field, timestamp_field


class JobStatus(StrEnum):
    """The job lifecycle.

    queued      → running     the pool claimed it (atomically) and started a worker process
    queued      → cancelled   cancelled before any worker picked it up
    running     → succeeded   the handler returned
    running     → failed      the handler raised, or the worker exited non-zero without a word
    running     → cancelled   a user asked to cancel; the worker stopped (or was killed)
    running     → interrupted the worker vanished (killed, server restarted, heartbeat stale)
                              or the studio shut down; work that can resume (training) resumes
                              from its last checkpoint when the user asks
    Terminal states never change again; a retry is a new attempt of a new job.
    """

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"
    interrupted = "interrupted"

    @property
    def terminal(self) -> bool:
        return self not in (JobStatus.queued, JobStatus.running)


TERMINAL_STATUSES = tuple(s.value for s in JobStatus if s.terminal)


class JobQueue(StrEnum):
    """Two lanes so a long training run never blocks an import or a prediction, plus the
    resident predictor's queue, which the lanes only take over when it is down or stuck."""

    compute = "compute"  # train, evaluate, export: STUDIO_WORKERS slots
    light = "light"  # import (and predict fallback): STUDIO_LIGHT_WORKERS slots
    predict = "predict"  # claimed by `python -m workers.predictor`; see workers/pool.py


class Job(SQLModel, table=True):
    __tablename__ = "job"
    __table_args__ = (Index("ix_job_status_queue", "status", "queue", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=40)
    queue: str = Field(default=JobQueue.compute.value, max_length=16)
    project_id: int | None = Field(
        default=None, foreign_key="project.id", ondelete="CASCADE", index=True
    )
    target: str = Field(default="", max_length=100)
    title: str = Field(default="", max_length=200)
    params: dict[str, Any] = json_field()
    status: str = Field(default=JobStatus.queued.value, max_length=20)
    pid: int | None = None
    host: str | None = Field(default=None, max_length=255)
    attempt: int = 0
    heartbeat_at: datetime | None = timestamp_field()
    progress: float | None = None
    progress_detail: dict[str, Any] = json_field()
    message: str = Field(default="", max_length=500)
    error: str | None = None
    result: dict[str, Any] = json_field()
    cancel_requested: bool = False
    exit_code: int | None = None
    created_at: datetime = created_at_field()
    started_at: datetime | None = timestamp_field()
    finished_at: datetime | None = timestamp_field()


class JobEvent(SQLModel, table=True):
    """An append-only event; (job_id, seq) is the SSE `id:` a client resumes after."""

    __tablename__ = "job_event"
    __table_args__ = (UniqueConstraint("job_id", "seq", name="uq_job_event_seq"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="job.id", ondelete="CASCADE", index=True)
    seq: int
    type: str = Field(max_length=20)
    payload: dict[str, Any] = json_field()
    ts: datetime = created_at_field()


class JobRead(BaseModel):
    id: int
    kind: str
    queue: str
    project_id: int | None
    target: str
    title: str
    params: dict[str, Any]
    status: str
    attempt: int
    progress: float | None
    progress_detail: dict[str, Any]
    message: str
    error: str | None
    result: dict[str, Any]
    cancel_requested: bool
    exit_code: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None


class JobEventRead(BaseModel):
    seq: int
    type: str
    payload: dict[str, Any]
    ts: datetime
