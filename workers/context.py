"""JobContext: what a handler gets — its job, a database session, and ways to report back."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.config import Settings
from app.models import Job
from app.services import jobs as job_service
from app.services.events import add_event
from app.storage import Storage

log = logging.getLogger("workers")


class JobCancelled(Exception):
    """Raised at a safe point once the job was asked to stop (cancel or studio shutdown)."""


class JobContext:
    """Handed to every handler. Progress and events are throttled so a tight loop can report
    every item without flooding the database; cancellation is checked on every report."""

    progress_interval = 0.3

    def __init__(self, job: Job, settings: Settings, engine: Engine) -> None:
        assert job.id is not None
        self.job_id: int = job.id
        self.kind = job.kind
        self.params: dict[str, Any] = dict(job.params or {})
        self.project_id = job.project_id
        self.target = job.target
        self.settings = settings
        self.engine = engine
        self.storage = Storage(settings.workspace_dir)
        self.stop_requested = threading.Event()
        self._started = time.monotonic()
        self._last_progress = 0.0
        self._rate_origin: tuple[float, float] | None = None

    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    # --- cancellation -------------------------------------------------------------------

    @property
    def cancelled(self) -> bool:
        return self.stop_requested.is_set()

    def check_cancelled(self) -> None:
        if self.stop_requested.is_set():
            raise JobCancelled

    def user_cancelled(self) -> bool:
        """True if a user asked for the cancel (vs. the studio shutting down)."""
        with self.session() as session:
            job = session.get(Job, self.job_id)
            return bool(job and job.cancel_requested)

    # --- reporting ----------------------------------------------------------------------

    def event(self, type: str, payload: dict[str, Any]) -> None:
        with self.session() as session:
            add_event(session, job_id=self.job_id, type=type, payload=payload)

    def log(self, message: str, level: str = "info", **extra: Any) -> None:
        log.log(logging.getLevelName(level.upper()), "job %s: %s", self.job_id, message)
        self.event("log", {"level": level, "message": message, **extra})

    def metric(self, **values: Any) -> None:
        self.event("metric", values)

    def progress(
        self,
        done: float,
        total: float | None = None,
        *,
        message: str = "",
        unit: str = "",
        force: bool = False,
        **extra: Any,
    ) -> None:
        """Report work done so far; computes rate and ETA. Raises JobCancelled when asked to
        stop, which makes every progress report a safe point."""
        self.check_cancelled()
        now = time.monotonic()
        finished = total is not None and done >= total
        if not force and not finished and now - self._last_progress < self.progress_interval:
            return
        self._last_progress = now
        if self._rate_origin is None:
            self._rate_origin = (now, done)
        origin_time, origin_done = self._rate_origin
        elapsed = now - origin_time
        rate = (done - origin_done) / elapsed if elapsed > 0.5 and done > origin_done else None
        eta = (total - done) / rate if rate and total is not None else None
        fraction = min(1.0, done / total) if total else None
        detail: dict[str, Any] = {
            "done": done,
            "total": total,
            "unit": unit,
            "rate": rate,
            "eta_seconds": eta,
            "elapsed_seconds": now - self._started,
            **extra,
        }
        with self.session() as session:
            job_service.record_progress(
                session, job_id=self.job_id, fraction=fraction, detail=detail, message=message
            )
            add_event(
                session,
                job_id=self.job_id,
                type="progress",
                payload={"fraction": fraction, "message": message, **detail},
            )
