"""`python -m workers.predictor`: the resident predictor, started and supervised by the pool.

A worker process per prediction costs seconds (interpreter start, imports, the pool's poll,
loading the model) for under a millisecond of inference. This process stays up, claims jobs
of the `predict` queue itself, and keeps loaded models in a small LRU keyed by export id, so
the round trip is the real work. It sleeps on a named pipe in the workspace that the web
process writes a byte into after queueing a predict job (app.services.predictions
.wake_predictor), so it starts a job within a millisecond of its commit while costing almost
no CPU when idle; a database poll every IDLE_POLL_SECONDS catches jobs whose submitter could
not wake it (and POLL_SECONDS polling is used where no pipe can be made).

It records each job exactly like `python -m workers.run` (status, result, events, heartbeats,
its own pid), and a failing prediction fails that job only. It exits on SIGTERM/SIGINT
(after the job in hand) and when the pool that started it is gone, so it is never orphaned.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select as _select
import signal
import stat
import sys
import threading
import time
import traceback
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from app.config import Settings, get_settings
from app.db import engine_for
from app.errors import StudioError
from app.models import Export, Job, JobQueue, JobStatus
from app.services import jobs as job_service
from app.storage import Storage
from workers.context import JobContext
from workers.handlers.predict import run_prediction
from workers.ml.predict import Predictor

log = logging.getLogger("workers.predictor")

POLL_SECONDS = 0.02  # without a wake pipe
IDLE_POLL_SECONDS = 0.5  # with one
CACHE_SIZE = 4
PRUNE_SECONDS = 10.0

Signature = tuple[str, int, int, int]


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0


class ModelCache:
    """Loaded predictors by export id, least recently used dropped first.

    An entry is reused only while its export points at the same file with the same inode,
    size and mtime, so a re-export or replaced file is loaded again; entries of deleted
    exports (row or file gone) are dropped by prune()."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self.entries: OrderedDict[int, tuple[Signature, Predictor]] = OrderedDict()
        self.stats = CacheStats()

    @staticmethod
    def signature(export: Export, path: Path) -> Signature:
        info = path.stat()
        return (str(export.path), info.st_ino, info.st_size, info.st_mtime_ns)

    def get(self, export: Export, path: Path) -> tuple[Predictor, bool]:
        assert export.id is not None
        try:
            signature = self.signature(export, path)
        except OSError:
            self.entries.pop(export.id, None)
            raise
        entry = self.entries.get(export.id)
        if entry is not None and entry[0] == signature:
            self.entries.move_to_end(export.id)
            self.stats.hits += 1
            return entry[1], True
        self.entries.pop(export.id, None)
        predictor = Predictor(path, threads=1)
        self.stats.misses += 1
        self.entries[export.id] = (signature, predictor)
        while len(self.entries) > self.size:
            self.entries.popitem(last=False)
        return predictor, False

    def prune(self, session: Session, resolve: Any) -> None:
        """Drop models whose export row was deleted or whose file changed or vanished."""
        if not self.entries:
            return
        rows = {
            e.id: e
            for e in session.exec(select(Export).where(Export.id.in_(list(self.entries))))  # type: ignore[union-attr]
        }
        for export_id, (signature, _predictor) in list(self.entries.items()):
            export = rows.get(export_id)
            try:
                current = (
                    self.signature(export, resolve(export.path))
                    if export is not None and export.path
                    else None
                )
            except (OSError, ValueError):
                current = None
            if current != signature:
                del self.entries[export_id]
                log.info("dropped cached model of export %s", export_id)


def open_wake_pipe(path: Path) -> int | None:
    """The read side of the wake pipe, made if missing; None where no FIFO can be made.

    Opened read-write so the pipe always has a writer: otherwise, once the last web-process
    writer closes, select() reports end-of-file as readable forever (a busy loop)."""
    try:
        if path.exists() and not stat.S_ISFIFO(path.lstat().st_mode):
            path.unlink()
        if not path.exists():
            with contextlib.suppress(FileExistsError):
                os.mkfifo(path, 0o600)
        return os.open(path, os.O_RDWR | os.O_NONBLOCK)
    except OSError:
        log.warning("no wake pipe at %s; polling every %s s", path, POLL_SECONDS, exc_info=True)
        return None


def wait_for_wake(fd: int, timeout: float) -> bool:
    """Sleep until a wake-up byte arrives or `timeout` passes; drain the pipe. True if woken."""
    ready, _, _ = _select.select([fd], [], [], timeout)
    if not ready:
        return False
    with contextlib.suppress(BlockingIOError):
        while os.read(fd, 4096):
            pass
    return True


class ResidentPredictor:
    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        self.settings = settings
        self.engine = engine or engine_for(settings.resolved_database_url)
        self.cache = ModelCache()
        self.stop = threading.Event()
        # The pool names itself: reading getppid() here would be too late when the pool died
        # during this process's start-up (we would take init for our parent and never leave).
        parent = os.environ.get("STUDIO_PREDICTOR_PARENT_PID", "")
        self.parent = int(parent) if parent.isdigit() else os.getppid()
        self.current: JobContext | None = None
        self._last_prune = time.monotonic()

    def run_forever(self) -> int:
        signal.signal(signal.SIGTERM, lambda *_: self.stop.set())
        signal.signal(signal.SIGINT, lambda *_: self.stop.set())
        beat = threading.Thread(target=self._heartbeat_loop, daemon=True)
        beat.start()
        wake = open_wake_pipe(Storage(self.settings.workspace_dir).predictor_wake_path)
        log.info(
            "resident predictor up (pid %s), %s",
            os.getpid(),
            "waiting on its wake pipe" if wake is not None else "polling",
        )
        while not self.stop.is_set():
            if os.getppid() != self.parent:
                log.warning("the pool that started this predictor is gone; exiting")
                break
            try:
                worked = self.step()
            except Exception:  # a database hiccup must not end the predictor
                log.exception("predictor step failed")
                worked = False
            if worked:
                continue
            if wake is None:
                self.stop.wait(POLL_SECONDS)
            else:
                wait_for_wake(wake, IDLE_POLL_SECONDS)
        if wake is not None:
            os.close(wake)
        log.info("resident predictor stopped")
        return 0

    def step(self) -> bool:
        """Run one predict job if one is queued; True if there was one."""
        with Session(self.engine, expire_on_commit=False) as session:
            job = job_service.claim_next_job(session, queue=JobQueue.predict.value)
            if job is None:
                if time.monotonic() - self._last_prune > PRUNE_SECONDS:
                    self._last_prune = time.monotonic()
                    self.cache.prune(session, Storage(self.settings.workspace_dir).resolve)
                return False
            assert job.id is not None
            job_service.set_pid(session, job_id=job.id, pid=os.getpid())
        self.run_job(job)
        return True

    def run_job(self, job: Job) -> None:
        ctx = JobContext(job, self.settings, self.engine)
        self.current = ctx
        try:
            if job.kind != "predict":
                raise StudioError(f"The resident predictor runs predict jobs, not {job.kind!r}.")
            result = run_prediction(ctx, self.cache.get, served_by="predictor")
            summary = str(result.get("summary") or "")
            self._finish(ctx, JobStatus.succeeded, result=result, message=summary, exit_code=0)
        except StudioError as exc:
            self._finish(
                ctx,
                JobStatus.failed,
                message=exc.message,
                error=exc.message,
                result=exc.as_dict(),
            )
        except Exception as exc:  # one bad job fails that job, not the predictor
            text = f"{type(exc).__name__}: {exc}"
            log.warning("job %s failed: %s", ctx.job_id, text)
            try:
                ctx.event(
                    "log",
                    {
                        "level": "error",
                        "message": text,
                        "traceback": traceback.format_exc()[-8000:],
                    },
                )
            finally:
                self._finish(ctx, JobStatus.failed, message=text[:500], error=text)
        finally:
            self.current = None

    @staticmethod
    def _finish(ctx: JobContext, status: JobStatus, **kwargs: Any) -> None:
        with ctx.session() as session:
            job_service.finish_job(session, job_id=ctx.job_id, status=status, **kwargs)

    def _heartbeat_loop(self) -> None:
        while not self.stop.wait(self.settings.heartbeat_seconds):
            ctx = self.current
            if ctx is None:
                continue
            try:
                with ctx.session() as session:
                    job_service.heartbeat(session, job_id=ctx.job_id)
            except Exception:
                log.warning("heartbeat for job %s failed", ctx.job_id, exc_info=True)


def main() -> int:
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s predictor pid={os.getpid()} %(levelname)s %(name)s: %(message)s",
    )
    return ResidentPredictor(get_settings()).run_forever()


if __name__ == "__main__":
    sys.exit(main())
